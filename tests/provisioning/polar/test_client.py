"""PolarApi against the local Polar over HTTP: what is counted, what is retried and how long it
waits, which writes are ambiguous, and how Polar's refusals read. Faults come from the emulator's
control API; ``sleep=`` records the waits instead of sleeping."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI

from provisioning.polar.client import AmbiguousWriteError, PolarApi, polar_sdk
from provisioning.polar.errors import ProvisioningError, TransientPolarError
from tests.provisioning.conftest import consent

ORGS = "/v1/organizations/"
SCOPE = "organizations:read organizations:write products:read products:write"
DEMO_USER = "demo@polar.local"


def user_token(server: EmulatorServer, *, user: str = DEMO_USER, scope: str = SCOPE) -> str:
    """An access token from the real authorization-code flow: consent, then the token endpoint."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": DEMO_CLIENT_ID,
            "redirect_uri": DEMO_REDIRECT_URI,
            "scope": scope,
            "state": uuid.uuid4().hex,
        }
    )
    code, _ = consent(f"{server.url}/oauth2/authorize?{query}", user=user)
    response = httpx.post(
        f"{server.url}/v1/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": DEMO_REDIRECT_URI,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def add_fault(control: httpx.Client, **spec: object) -> None:
    control.post("/_emulator/faults", json=spec).raise_for_status()


def fault_hits(control: httpx.Client) -> list[int]:
    return [f["hits"] for f in control.get("/_emulator/faults").json()]


def logged(control: httpx.Client, method: str, path: str = ORGS) -> list[dict]:
    return [
        r for r in control.get("/_emulator/requests").json() if r["method"] == method and r["path"] == path
    ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll for something the emulator finishes on its own thread (not a sleep to hope a race away)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class LatePort:
    """A local port that refuses every connection until ``open()``, then forwards each one to
    ``target`` (host, port): Polar's address while it is unreachable, then once it is back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def open(self) -> None:
        self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def late_port(emulator: EmulatorServer) -> Iterator[LatePort]:
    port = LatePort((emulator.host, emulator.port))
    yield port
    port.close()


def backoff_bounds(api: PolarApi, attempt: int) -> tuple[float, float]:
    """The documented wait after failed attempt ``attempt``: capped exponential, jittered ±50%."""
    raw = min(api.backoff_cap, api.backoff_base * 2 ** (attempt - 1))
    return raw * 0.5, raw * 1.5


@pytest.fixture
def token(emulator: EmulatorServer) -> str:
    return user_token(emulator)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def api(emulator: EmulatorServer, token: str, sleeps: list[float]) -> PolarApi:
    return PolarApi(emulator.url, token, sleep=sleeps.append)


def list_orgs(api: PolarApi, **kwargs: object):
    return api.read(
        api.sdk.organizations.list, action="list organizations", scope="organizations:read", **kwargs
    )


def create_org(api: PolarApi, slug: str, **kwargs: object):
    return api.create(
        api.sdk.organizations.create,
        action="create a Polar organization",
        scope="organizations:write",
        name=f"Org {slug}",
        slug=slug,
        **kwargs,
    )


def org_slugs(api: PolarApi) -> set[str]:
    return {o.slug for o in list_orgs(api, limit=100).items}


# -- counting and the shared SDK client ---------------------------------------------------------


def test_reads_and_writes_are_counted_per_call(api: PolarApi, sleeps: list[float]) -> None:
    [org] = list_orgs(api).items
    api.read(api.sdk.organizations.get, org.id, action="read the organization", scope="organizations:read")
    api.write(
        api.sdk.organizations.update, org.id, action="rename it", scope="organizations:write", name="Renamed"
    )
    create_org(api, "counted-org")
    assert (api.reads, api.writes) == (2, 2)
    assert api.counts == {"read": 2, "write": 2}
    assert repr(api) == "PolarApi(reads=2, writes=2)"
    assert sleeps == []


def test_the_token_is_sent_per_call_on_one_shared_client(emulator: EmulatorServer, token: str) -> None:
    demo = PolarApi(emulator.url, token)
    multi = PolarApi(emulator.url, user_token(emulator, user="multi@polar.local"))
    assert demo.sdk is multi.sdk is polar_sdk(emulator.url)
    # Same client, each call with its own tenant's token.
    assert {o.slug for o in list_orgs(demo).items} == {"demo-org"}
    assert {o.slug for o in list_orgs(multi).items} == {"acme", "acme-labs"}


def test_one_sdk_client_per_process_and_base_url(emulator: EmulatorServer) -> None:
    client = polar_sdk(emulator.url)
    assert polar_sdk(emulator.url) is client
    other_url = emulator.url.replace("127.0.0.1", "localhost")
    assert polar_sdk(other_url) is not client
    assert polar_sdk(other_url) is polar_sdk(other_url)

    # A forked child never reuses the parent's client (its connections belong to the parent).
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any pytest machinery
        try:
            fresh = polar_sdk(emulator.url)
            ok = fresh is not client and polar_sdk(emulator.url) is fresh
            os.write(write_end, b"ok" if ok else b"shared")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 16)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert answer == b"ok"
    assert polar_sdk(emulator.url) is client


# -- retries of idempotent calls on 5xx and network errors --------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_read_is_retried_after_server_errors_with_backoff(
    api: PolarApi, control: httpx.Client, sleeps: list[float], status: int
) -> None:
    add_fault(control, path=ORGS, method="GET", status=status, count=2)
    assert {o.slug for o in list_orgs(api).items} == {"demo-org"}
    assert api.reads == 3 and api.writes == 0
    assert [r["status"] for r in logged(control, "GET")] == [status, status, 200]
    assert len(sleeps) == 2
    for attempt, waited in enumerate(sleeps, start=1):
        low, high = backoff_bounds(api, attempt)
        assert low <= waited <= high, (attempt, waited)


def test_backoff_grows_and_is_capped(
    emulator: EmulatorServer, token: str, control: httpx.Client, sleeps: list[float]
) -> None:
    api = PolarApi(
        emulator.url, token, max_attempts=6, backoff_base=1.0, backoff_cap=3.0, sleep=sleeps.append
    )
    add_fault(control, path=ORGS, status=503, count=5)
    list_orgs(api)
    assert api.reads == 6 and len(sleeps) == 5
    # Raw waits 1, 2, 3 (cap), 3, 3, each jittered within ±50%.
    for attempt, waited in enumerate(sleeps, start=1):
        low, high = backoff_bounds(api, attempt)
        assert low <= waited <= high, (attempt, waited)
    assert max(sleeps) <= 3.0 * 1.5


def test_a_read_that_keeps_failing_becomes_a_transient_error(
    emulator: EmulatorServer, token: str, control: httpx.Client, sleeps: list[float]
) -> None:
    api = PolarApi(emulator.url, token, max_attempts=3, sleep=sleeps.append)
    add_fault(control, path=ORGS, status=503)
    with pytest.raises(TransientPolarError) as caught:
        list_orgs(api)
    error = caught.value
    assert type(error) is TransientPolarError  # not an ambiguous write: nothing was written
    assert error.retryable and error.status == 503
    assert str(error) == "Polar is unavailable: HTTP 503 while trying to list organizations; will retry"
    assert api.reads == 3 and len(sleeps) == 2
    assert fault_hits(control) == [3]


def test_an_update_is_retried_after_a_server_error(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    [org] = list_orgs(api).items
    add_fault(control, path=f"{ORGS}{org.id}", method="PATCH", status=502, count=1)
    updated = api.write(
        api.sdk.organizations.update, org.id, action="rename it", scope="organizations:write", name="Renamed"
    )
    assert updated.name == "Renamed"
    assert (api.reads, api.writes) == (1, 2)
    assert len(sleeps) == 1


def test_a_read_is_retried_after_a_timeout(api: PolarApi, control: httpx.Client, sleeps: list[float]) -> None:
    add_fault(control, path=ORGS, method="GET", latency_ms=2500, count=1)
    assert {o.slug for o in list_orgs(api, request_timeout=1.0).items} == {"demo-org"}
    assert api.reads == 2 and len(sleeps) == 1
    assert fault_hits(control) == [1]
    # Let the emulator finish with the abandoned request before the next test resets it.
    wait_for(lambda: len(logged(control, "GET")) == 2, "the abandoned read to end")


def test_a_refused_connection_is_retried_then_reported(
    late_port: LatePort, token: str, sleeps: list[float]
) -> None:
    api = PolarApi(late_port.url, token, max_attempts=3, sleep=sleeps.append)
    with pytest.raises(TransientPolarError) as caught:
        list_orgs(api)
    assert type(caught.value) is TransientPolarError
    assert "network error (ConnectError)" in str(caught.value)
    assert api.reads == 3 and len(sleeps) == 2


# -- creates: never retried once sent ----------------------------------------------------------


def test_a_create_that_got_a_server_error_is_ambiguous_and_not_retried(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    add_fault(control, path=ORGS, method="POST", status=500, count=1)
    with pytest.raises(AmbiguousWriteError) as caught:
        create_org(api, "maybe-org")
    error = caught.value
    assert error.retryable and error.status == 500
    assert "create a Polar organization" in str(error) and "HTTP 500" in str(error)
    assert api.writes == 1 and sleeps == []
    assert [r["status"] for r in logged(control, "POST")] == [500]
    # This time Polar failed before creating; the caller lists to find out.
    assert "maybe-org" not in org_slugs(api)


def test_a_create_whose_response_was_lost_did_happen(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    add_fault(control, path=ORGS, method="POST", status=503, when="after", count=1)
    with pytest.raises(AmbiguousWriteError):
        create_org(api, "lost-response-org")
    assert api.writes == 1 and sleeps == []
    # Retrying the create would have made a second one; listing finds the first.
    assert "lost-response-org" in org_slugs(api)
    assert len(logged(control, "POST")) == 1


def test_a_create_that_timed_out_after_sending_is_ambiguous(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    add_fault(control, path=ORGS, method="POST", latency_ms=1000, count=1)
    with pytest.raises(AmbiguousWriteError) as caught:
        create_org(api, "slow-org", request_timeout=0.3)
    assert "network error (ReadTimeout)" in str(caught.value)
    assert api.writes == 1 and sleeps == []
    assert fault_hits(control) == [1]  # one attempt reached Polar, and it was not repeated
    # Let the emulator finish with the abandoned request before the next test resets it.
    wait_for(lambda: len(logged(control, "POST")) == 1, "the abandoned create to end")


def test_a_create_refused_before_sending_is_retried(
    late_port: LatePort, token: str, control: httpx.Client, sleeps: list[float]
) -> None:
    def sleep_then_come_back(seconds: float) -> None:
        sleeps.append(seconds)
        late_port.open()

    api = PolarApi(late_port.url, token, sleep=sleep_then_come_back)
    org = create_org(api, "second-try-org")
    assert org.slug == "second-try-org"
    assert api.writes == 2 and len(sleeps) == 1
    low, high = backoff_bounds(api, 1)
    assert low <= sleeps[0] <= high
    # The refused attempt never reached Polar: exactly one create did.
    assert [r["status"] for r in logged(control, "POST")] == [201]
    assert "second-try-org" in org_slugs(api)


def test_a_non_idempotent_write_is_ambiguous_like_a_create(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    [org] = list_orgs(api).items
    add_fault(control, path=f"{ORGS}{org.id}", method="PATCH", status=500, count=1)
    with pytest.raises(AmbiguousWriteError):
        api.write(
            api.sdk.organizations.update,
            org.id,
            action="rename it",
            scope="organizations:write",
            idempotent=False,
            name="Renamed",
        )
    assert api.writes == 1 and sleeps == []


# -- 429: Retry-After honoured up to max_retry_after -------------------------------------------


def test_a_429_waits_its_retry_after_then_succeeds(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    add_fault(control, path=ORGS, method="GET", status=429, retry_after=3, count=2)
    assert {o.slug for o in list_orgs(api).items} == {"demo-org"}
    assert sleeps == [3.0, 3.0]
    assert api.reads == 3


def test_a_429_on_a_create_is_retried_because_nothing_was_done(
    api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    add_fault(control, path=ORGS, method="POST", status=429, retry_after=1, count=1)
    create_org(api, "rate-limited-org")
    assert sleeps == [1.0] and api.writes == 2
    assert [r["status"] for r in logged(control, "POST")] == [429, 201]


@pytest.mark.parametrize(("retry_after", "waits"), [(5, True), (6, False)])
def test_a_429_longer_than_max_retry_after_is_not_waited_for(
    emulator: EmulatorServer,
    token: str,
    control: httpx.Client,
    sleeps: list[float],
    retry_after: int,
    waits: bool,
) -> None:
    api = PolarApi(emulator.url, token, max_retry_after=5, sleep=sleeps.append)
    add_fault(control, path=ORGS, status=429, retry_after=retry_after, count=1)
    if waits:
        list_orgs(api)
        assert sleeps == [5.0] and api.reads == 2
        return
    with pytest.raises(TransientPolarError) as caught:
        list_orgs(api)
    error = caught.value
    assert error.status == 429 and error.retryable
    assert str(error) == (
        "Polar is rate-limiting our requests (retry after 6s) while trying to list organizations"
    )
    assert sleeps == [] and api.reads == 1


def test_polar_s_own_rate_limit_is_a_transient_error(
    emulator: EmulatorServer, api: PolarApi, control: httpx.Client, sleeps: list[float]
) -> None:
    # Start just after a minute boundary, so both calls fall in one window.
    left = 60 - emulator.store.clock.time() % 60
    control.post("/_emulator/clock", json={"advance_seconds": left + 0.5}).raise_for_status()
    control.post("/_emulator/rate-limit", json={"per_minute": 1}).raise_for_status()
    list_orgs(api)
    with pytest.raises(TransientPolarError) as caught:
        list_orgs(api)  # Polar answers Retry-After: 60, beyond the 10 s we wait inline
    assert caught.value.status == 429 and "retry after 60s" in str(caught.value)
    assert sleeps == []


def test_a_429_that_keeps_coming_stops_after_max_attempts(
    emulator: EmulatorServer, token: str, control: httpx.Client, sleeps: list[float]
) -> None:
    api = PolarApi(emulator.url, token, max_attempts=3, sleep=sleeps.append)
    add_fault(control, path=ORGS, status=429, retry_after=1)
    with pytest.raises(TransientPolarError) as caught:
        list_orgs(api)
    assert caught.value.status == 429
    assert sleeps == [1.0, 1.0] and api.reads == 3


# -- 4xx: refusals a person can act on, never retried ------------------------------------------


def test_a_rejected_token_needs_a_reconnect(
    api: PolarApi, token: str, control: httpx.Client, sleeps: list[float]
) -> None:
    list_orgs(api)
    control.post("/_emulator/tokens/revoke-user", json={"email": DEMO_USER}).raise_for_status()
    with pytest.raises(ProvisioningError) as caught:
        list_orgs(api)
    error = caught.value
    assert error.status == 401 and error.needs_reconnect and not error.retryable
    assert "reconnect Polar" in str(error)
    assert token not in str(error)
    assert api.reads == 2 and sleeps == []


def test_a_missing_scope_names_the_scope(emulator: EmulatorServer, sleeps: list[float]) -> None:
    api = PolarApi(emulator.url, user_token(emulator, scope="products:read"), sleep=sleeps.append)
    with pytest.raises(ProvisioningError) as caught:
        list_orgs(api)
    error = caught.value
    assert error.status == 403 and error.needs_reconnect
    assert str(error) == (
        "Polar refused: the connection lacks the 'organizations:read' scope; reconnect Polar to grant it"
    )
    assert api.reads == 1 and sleeps == []


@pytest.mark.parametrize("call", ["organizations.create", "products.update"])
def test_a_missing_scope_on_a_call_with_a_typed_403_names_the_scope(
    emulator: EmulatorServer, call: str
) -> None:
    api = PolarApi(emulator.url, user_token(emulator, scope="products:read organizations:read"))
    with pytest.raises(ProvisioningError) as caught:
        if call == "organizations.create":
            create_org(api, "no-scope-org")
        else:
            api.write(
                api.sdk.products.update,
                str(uuid.uuid4()),
                action="rename the product",
                scope="products:write",
                name="Renamed",
            )
    assert caught.value.status == 403 and caught.value.needs_reconnect
    assert "lacks the" in str(caught.value)


def test_a_403_from_the_organization_asks_for_an_owner(
    emulator: EmulatorServer, api: PolarApi, sleeps: list[float]
) -> None:
    [org] = list_orgs(api).items
    demo = emulator.store.user_by_email(DEMO_USER)
    emulator.store.memberships[demo.id][org.id] = "member"  # a member may not manage the organization
    with pytest.raises(ProvisioningError) as caught:
        api.write(
            api.sdk.organizations.update,
            org.id,
            action="rename it",
            scope="organizations:write",
            name="X-Y-Z",
        )
    error = caught.value
    assert error.status == 403 and not error.needs_reconnect
    assert str(error).startswith("Polar refused to rename it: You don't have permission to manage")
    assert "An owner or admin of the Polar organization must connect it" in str(error)
    assert api.writes == 1 and sleeps == []


def test_a_404_says_the_object_was_not_found(api: PolarApi, sleeps: list[float]) -> None:
    with pytest.raises(ProvisioningError) as caught:
        api.read(
            api.sdk.organizations.get,
            str(uuid.uuid4()),
            action="read the organization",
            scope="organizations:read",
        )
    assert caught.value.status == 404 and not caught.value.retryable
    assert str(caught.value) == "Polar could not find the object while trying to read the organization"
    assert api.reads == 1 and sleeps == []


def test_a_422_names_the_fields(api: PolarApi, sleeps: list[float]) -> None:
    with pytest.raises(ProvisioningError) as caught:
        create_org(api, "demo-org")
    assert caught.value.status == 422 and not caught.value.retryable
    assert str(caught.value) == (
        "Polar rejected the request to create a Polar organization: "
        "slug: An organization with this slug already exists."
    )
    with pytest.raises(ProvisioningError) as caught:
        api.create(
            api.sdk.organizations.create,
            action="create a Polar organization",
            scope="organizations:write",
            name="ab",
            slug="ok-slug",
        )
    assert str(caught.value) == (
        "Polar rejected the request to create a Polar organization: name: String should have at least 3 characters"
    )
    assert api.writes == 2 and sleeps == []


def test_another_4xx_gives_its_status(api: PolarApi, control: httpx.Client, sleeps: list[float]) -> None:
    add_fault(control, path=ORGS, method="GET", status=409, count=1)
    with pytest.raises(ProvisioningError) as caught:
        list_orgs(api)
    assert type(caught.value) is ProvisioningError and caught.value.status == 409
    assert str(caught.value) == "Polar refused to list organizations (HTTP 409)"
    assert api.reads == 1 and sleeps == []


# -- list_all: every page, one counted read each ---------------------------------------------


@pytest.fixture
def owner_of(
    emulator: EmulatorServer, control: httpx.Client, sleeps: list[float]
) -> Callable[[int], PolarApi]:
    """A PolarApi for a new Polar user who owns ``organizations`` organizations."""

    def make(organizations: int) -> PolarApi:
        email = f"owner-{organizations}@example.com"
        orgs = [
            {"name": f"Org {n:03d}", "slug": f"org-{organizations}-{n:03d}"} for n in range(organizations)
        ]
        control.post("/_emulator/users", json={"email": email, "organizations": orgs}).raise_for_status()
        return PolarApi(emulator.url, user_token(emulator, user=email), sleep=sleeps.append)

    return make


@pytest.mark.parametrize(("organizations", "pages"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_list_all_reads_every_page_once(
    owner_of: Callable[[int], PolarApi], control: httpx.Client, organizations: int, pages: int
) -> None:
    api = owner_of(organizations)
    control.delete("/_emulator/requests").raise_for_status()
    items = api.list_all(api.sdk.organizations.list, action="list organizations", scope="organizations:read")
    assert len(items) == organizations
    assert len({o.id for o in items}) == organizations
    assert api.reads == pages
    queries = [parse_qs(r["query"]) for r in logged(control, "GET")]
    assert [(q["page"], q["limit"]) for q in queries] == [([str(p)], ["100"]) for p in range(1, pages + 1)]


def test_a_page_that_fails_once_is_retried_without_losing_or_repeating_items(
    owner_of: Callable[[int], PolarApi], control: httpx.Client, sleeps: list[float]
) -> None:
    api = owner_of(250)
    pages: Iterator = api.iter_all(
        api.sdk.organizations.list, action="list organizations", scope="organizations:read"
    )
    first = list(itertools.islice(pages, 100))  # page 1 read; page 2 not asked for yet
    assert api.reads == 1
    add_fault(control, path=ORGS, method="GET", status=502, count=1)
    rest = list(pages)
    slugs = [o.slug for o in first + rest]
    assert len(slugs) == 250 and len(set(slugs)) == 250
    assert api.reads == 4 and len(sleeps) == 1
