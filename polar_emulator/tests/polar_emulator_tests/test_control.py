"""The emulator's control API: reset, clients, users, faults, rate limit, clock and request log."""

from __future__ import annotations

import time

import httpx
import pytest

from polar_emulator import EmulatorServer
from polar_emulator_tests.conftest import IssueToken

ORGS = "/v1/organizations/"


@pytest.fixture
def token(issue_token: IssueToken) -> str:
    return issue_token("demo@polar.local", scope="organizations:read organizations:write")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _org_slugs(control: httpx.Client, token: str) -> list[str]:
    response = control.get(ORGS, headers=_auth(token))
    assert response.status_code == 200, response.text
    return [o["slug"] for o in response.json()["items"]]


# -- reset, clients, users ---------------------------------------------------------------


def test_reset_restores_the_seed(emulator: EmulatorServer, control: httpx.Client, token: str) -> None:
    control.post("/_emulator/users", json={"email": "extra@example.com"}).raise_for_status()
    control.post("/_emulator/faults", json={"path": "/nowhere", "status": 500}).raise_for_status()
    control.post("/_emulator/clock", json={"advance_seconds": 3600}).raise_for_status()
    control.post("/_emulator/rate-limit", json={"per_minute": 5}).raise_for_status()
    assert control.post("/_emulator/reset").json() == {"ok": True}

    store = emulator.store
    assert store.user_by_email("extra@example.com") is None
    assert store.user_by_email("demo@polar.local") is not None
    assert {o["slug"] for o in store.organizations.values()} == {"demo-org", "acme", "acme-labs"}
    assert control.get("/_emulator/faults").json() == []
    assert control.get("/_emulator/requests").json() == []
    assert store.clock.offset == 0 and store.rate_limit_per_minute is None
    # Tokens are gone too.
    assert control.get(ORGS, headers=_auth(token)).status_code == 401


def test_clients_confidential_and_public(control: httpx.Client) -> None:
    confidential = control.post("/_emulator/clients", json={"name": "App", "redirect_uris": ["http://x/cb"]})
    assert confidential.status_code == 201
    body = confidential.json()
    assert body["client_id"].startswith("polar_ci_") and body["client_secret"].startswith("polar_cs_")
    public = control.post(
        "/_emulator/clients", json={"name": "SPA", "redirect_uris": ["http://x/cb"], "public": True}
    )
    assert public.json()["client_secret"] is None
    assert control.post("/_emulator/clients", json={"name": "bad"}).status_code == 422


def test_users_with_organizations(control: httpx.Client, issue_token: IssueToken) -> None:
    response = control.post(
        "/_emulator/users",
        json={"email": "owner@example.com", "organizations": [{"name": "Shop One", "slug": "shop-one"}]},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "owner@example.com"
    [org] = body["organizations"]
    assert org["slug"] == "shop-one" and org["id"]
    token = issue_token("owner@example.com", scope="organizations:read")
    assert _org_slugs(control, token) == ["shop-one"]


# -- faults ------------------------------------------------------------------------------


def test_fault_latency(control: httpx.Client, token: str) -> None:
    control.post("/_emulator/faults", json={"path": ORGS, "latency_ms": 300}).raise_for_status()
    started = time.perf_counter()
    assert control.get(ORGS, headers=_auth(token)).status_code == 200
    assert time.perf_counter() - started >= 0.3
    [fault] = control.get("/_emulator/faults").json()
    assert fault["hits"] == 1


@pytest.mark.parametrize("status", [500, 503])
def test_fault_server_errors(control: httpx.Client, token: str, status: int) -> None:
    control.post(
        "/_emulator/faults", json={"path": "/v1/organizations/*", "status": status}
    ).raise_for_status()
    response = control.get(ORGS, headers=_auth(token))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text in ("Internal Server Error", "Service Unavailable")


def test_fault_429_has_an_empty_body_and_retry_after(control: httpx.Client, token: str) -> None:
    control.post("/_emulator/faults", json={"path": ORGS, "status": 429, "retry_after": 7}).raise_for_status()
    response = control.get(ORGS, headers=_auth(token))
    assert response.status_code == 429
    assert response.content == b""
    assert response.headers["retry-after"] == "7"
    assert not any(k.lower().startswith("x-ratelimit") for k in response.headers)


def test_fault_rate_and_method(control: httpx.Client, token: str) -> None:
    control.post("/_emulator/faults", json={"path": ORGS, "status": 500, "rate": 0}).raise_for_status()
    assert all(control.get(ORGS, headers=_auth(token)).status_code == 200 for _ in range(5))
    control.delete("/_emulator/faults").raise_for_status()
    control.post(
        "/_emulator/faults", json={"path": ORGS, "status": 500, "rate": 1, "method": "POST"}
    ).raise_for_status()
    assert control.get(ORGS, headers=_auth(token)).status_code == 200
    assert (
        control.post(ORGS, json={"name": "New", "slug": "new-org"}, headers=_auth(token)).status_code == 500
    )


def test_fault_count_is_exhausted(control: httpx.Client, token: str) -> None:
    control.post("/_emulator/faults", json={"path": ORGS, "status": 503, "count": 2}).raise_for_status()
    codes = [control.get(ORGS, headers=_auth(token)).status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]
    [fault] = control.get("/_emulator/faults").json()
    assert fault["hits"] == 2 and fault["count"] == 0


def test_fault_after_the_write_happened(control: httpx.Client, token: str) -> None:
    control.post(
        "/_emulator/faults", json={"path": ORGS, "method": "POST", "status": 500, "when": "after", "count": 1}
    ).raise_for_status()
    response = control.post(
        ORGS, json={"name": "Lost Response", "slug": "lost-response"}, headers=_auth(token)
    )
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    # The organization was created even though the caller saw a failure.
    assert "lost-response" in _org_slugs(control, token)


def test_fault_after_holds_the_response_of_a_write_that_happened(control: httpx.Client, token: str) -> None:
    control.post(
        "/_emulator/faults",
        json={"path": ORGS, "method": "POST", "latency_ms": 5000, "when": "after", "count": 1},
    ).raise_for_status()
    with pytest.raises(httpx.ReadTimeout):  # the caller gives up waiting for the answer...
        control.post(
            ORGS, json={"name": "Held Response", "slug": "held-response"}, headers=_auth(token), timeout=0.5
        )
    # ...but the organization exists already.
    assert "held-response" in _org_slugs(control, token)


def test_fault_validation(control: httpx.Client) -> None:
    assert control.post("/_emulator/faults", json={"path": ORGS, "status": 200}).status_code == 422
    assert control.post("/_emulator/faults", json={"path": ORGS, "when": "later"}).status_code == 422


def test_control_routes_are_never_faulted(control: httpx.Client) -> None:
    control.post("/_emulator/faults", json={"path": "*", "status": 500}).raise_for_status()
    assert control.get("/_emulator/faults").status_code == 200
    assert control.get("/_emulator/requests").json() == []


# -- rate limit and clock ----------------------------------------------------------------


def _fresh_window(control: httpx.Client, emulator: EmulatorServer) -> None:
    """Move the clock to just after a minute boundary so a test cannot straddle two windows."""
    left = 60 - emulator.store.clock.time() % 60
    control.post("/_emulator/clock", json={"advance_seconds": left + 0.5}).raise_for_status()


def test_rate_limit_per_client_window(
    emulator: EmulatorServer, control: httpx.Client, token: str, issue_token: IssueToken
) -> None:
    _fresh_window(control, emulator)
    assert control.post("/_emulator/rate-limit", json={"per_minute": 3}).json() == {"per_minute": 3}
    codes = [control.get(ORGS, headers=_auth(token)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    blocked = control.get(ORGS, headers=_auth(token))
    assert blocked.status_code == 429 and blocked.content == b"" and blocked.headers["retry-after"] == "60"

    # Another token of the same OAuth client shares the bucket; another client has its own.
    same_client = issue_token("multi@polar.local", scope="organizations:read")
    assert control.get(ORGS, headers=_auth(same_client)).status_code == 429
    other = control.post(
        "/_emulator/clients", json={"name": "Other", "redirect_uris": ["http://x/cb"]}
    ).json()
    other_token = issue_token("demo@polar.local", scope="organizations:read", client_id=other["client_id"])
    assert control.get(ORGS, headers=_auth(other_token)).status_code == 200

    # A new minute opens a new window.
    control.post("/_emulator/clock", json={"advance_seconds": 60}).raise_for_status()
    assert control.get(ORGS, headers=_auth(token)).status_code == 200

    control.post("/_emulator/rate-limit", json={"per_minute": None}).raise_for_status()
    assert all(control.get(ORGS, headers=_auth(token)).status_code == 200 for _ in range(5))


def test_clock_advances_and_expires_tokens(
    emulator: EmulatorServer, control: httpx.Client, token: str
) -> None:
    before = emulator.store.clock.time()
    body = control.post("/_emulator/clock", json={"advance_seconds": 120}).json()
    assert body["offset_seconds"] == 120
    assert emulator.store.clock.time() - before >= 120
    assert control.post("/_emulator/clock", json={"advance_seconds": -1}).status_code == 422
    # The seeded token lives 10 days (864000 s).
    assert control.get(ORGS, headers=_auth(token)).status_code == 200
    control.post("/_emulator/clock", json={"advance_seconds": 864000}).raise_for_status()
    assert control.get(ORGS, headers=_auth(token)).status_code == 401


# -- request log -------------------------------------------------------------------------


def test_request_log_fields(emulator: EmulatorServer, control: httpx.Client, token: str) -> None:
    org_id = next(o["id"] for o in emulator.store.organizations.values() if o["slug"] == "demo-org")
    control.get(ORGS, params={"limit": 5}, headers=_auth(token))
    control.get(f"{ORGS}{org_id}", headers=_auth(token))
    control.get(ORGS)
    log = control.get("/_emulator/requests").json()
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", ORGS, 200),
        ("GET", f"{ORGS}{org_id}", 200),
        ("GET", ORGS, 401),
    ]
    first = log[0]
    assert set(first) >= {"method", "path", "query", "client", "organization", "status", "duration_ms"}
    assert first["started_ms"] <= log[1]["started_ms"] <= log[2]["started_ms"]
    assert first["query"] == "limit=5"
    assert first["client"] == "polar_ci_connectpolardemolocal0000000000000000"
    assert first["duration_ms"] >= 0
    assert log[1]["organization"] == org_id
    assert log[2]["client"] is None
    assert control.delete("/_emulator/requests").json() == {"ok": True}
    assert control.get("/_emulator/requests").json() == []


def test_polar_version_header(control: httpx.Client, token: str) -> None:
    default = control.get(ORGS, headers=_auth(token))
    assert default.headers["polar-version"] == "2026-04"
    assert default.headers["cache-control"] == "private, no-store"
    pinned = control.get(ORGS, headers={**_auth(token), "Polar-Version": "2026-10"})
    assert pinned.headers["polar-version"] == "2026-10"
    unknown = control.get(ORGS, headers={**_auth(token), "Polar-Version": "2027-01"})
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
