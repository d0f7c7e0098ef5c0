"""The tenant API through the real path: customer state, checkouts and usage ingestion, with 100 ms
added to every Polar call.

Run: ``.venv/bin/python bench/tenant_api.py [--latency-ms 100] [--calls 30]``

The web (gunicorn, as the Procfile starts it) and the worker (``python worker.py``) run on a fresh
PostgreSQL database with a private ``redis-server`` (``bench/stack.py``); the local Polar runs in
a process of its own whose event log this one reads (in this process, its thread would take the
interpreter from the timed calls). An owner signs up and connects Polar over HTTP; an API key is
made with ``flask api-keys create``; a customer buys the pro plan through the local Polar's purchase
flow, whose webhook events the worker processes into the platform's billing state. Then, with
``--latency-ms`` added to every Polar call (an emulator fault on ``/v1/*``), each part once the
platform has nothing left to do from the one before (webhook events, queued jobs):

- **customer state**: ``GET /api/v1/customers/{id}/state`` against Polar's own
  ``GET /v1/customers/external/{id}/state`` with the connection's token (polar-sdk's transport,
  warm), ``--calls`` of each, alternated; ``state_ratio=`` is the ratio of their medians (goal
  ≤ 0.1: answered from local state; ``state_source=`` says which source answered).
- **checkouts**: ``POST /api/v1/checkouts`` against a direct ``checkouts.create`` through polar-sdk
  with the same token, alternated likewise: ``checkout_ratio=`` (goal ≤ 1.2).
- **usage**: 10,000 usage events posted through ``POST /api/v1/usage`` (10 requests of 1,000), the
  worker left to ingest them. ``usage_calls=``: Polar ingest calls made (goal ≤ 11: one per 1,000);
  ``usage_exact=1`` only if each event is in the local Polar's event log exactly once (counted by
  external_id) and every stored event is ``ingested``, else 0. Last, because the local Polar works
  a customer's meters out from its whole event log on every read of a state.

The last line is ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa
from polar_emulator import EmulatorServer
from polar_emulator.config import EmulatorConfig
from polar_emulator.domain.store import collection
from rq import Queue
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import READY_TIMEOUT, Stack, connect_workspace  # noqa: E402
from provisioning.config import Settings  # noqa: E402
from provisioning.integrations.models import PolarIntegration  # noqa: E402
from provisioning.integrations.service import access_token  # noqa: E402
from provisioning.polar.client import polar_sdk  # noqa: E402

USAGE_REQUESTS = 10
EVENTS_PER_REQUEST = 1000
INGEST_TIMEOUT = 180.0
CUSTOMER = "bench-customer"
SUCCESS_URL = "https://tenant.example.com/welcome"


def _serve_local_polar(conn: Connection, redirect_uri: str) -> None:
    """The local Polar in a process of its own (timings in this one are not disturbed by it),
    answering questions about its event log over ``conn``."""
    server = EmulatorServer(EmulatorConfig(demo_redirect_uris=(redirect_uri,))).start()
    conn.send(server.url)
    while (question := conn.recv()) != "stop":
        if question == "event_counts":
            events = list(collection(server.store, "events").values())
            conn.send(dict(Counter(e["external_id"] for e in events)))
    server.stop()


class LocalPolar:
    def __init__(self, redirect_uri: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve_local_polar, args=(child, redirect_uri), daemon=True)
        self.process.start()
        if not self.conn.poll(30):
            raise RuntimeError("the local Polar did not start")
        self.url: str = self.conn.recv()

    def event_counts(self) -> Counter[str]:
        """How many times the local Polar's event log holds each external id."""
        self.conn.send("event_counts")
        return Counter(self.conn.recv())

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


class LocalPolarStack(Stack):
    """:class:`bench.stack.Stack` with a local Polar whose event log this process can read."""

    def __init__(self, workdir: Path, worker_args: list[str]) -> None:
        super().__init__(workdir, worker_args)
        self.local_polar: LocalPolar | None = None

    def start_polar(self, callback: str) -> str:
        self.local_polar = LocalPolar(callback)
        return self.local_polar.url

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.local_polar is not None:
                self.local_polar.stop()


def api_key(stack: Stack, workspace_id: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "api-keys", "create", workspace_id, "--name", "bench"],
        cwd=ROOT, env=stack.env, capture_output=True, text=True,
    )  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"api-keys create failed:\n{made.stdout}\n{made.stderr}")
    return made.stdout.strip().splitlines()[-1]


def paired_medians(ours: Callable[[], Any], direct: Callable[[], Any], n: int) -> tuple[float, float]:
    """Median milliseconds of ``n`` calls of each, alternated (whatever else the machine does at a
    moment weighs on both alike), after one warm-up call of each."""
    ours()
    direct()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for call, kept in ((ours, times[0]), (direct, times[1])):
            began = time.perf_counter()
            call()
            kept.append((time.perf_counter() - began) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def polar_calls(stack: Stack, path: str) -> int:
    requests = httpx.get(f"{stack.polar_url}/_emulator/requests", timeout=30).json()
    return sum(1 for r in requests if r["path"] == path)


# -- usage ----------------------------------------------------------------------------------------

INGESTED_SQL = sa.text("SELECT status, count(*) FROM usage_event WHERE integration_id = :i GROUP BY status")


def usage(stack: LocalPolarStack, api: httpx.Client, integration_id: str) -> dict[str, Any]:
    ids = [f"bench-{uuid.uuid4().hex}" for _ in range(USAGE_REQUESTS * EVENTS_PER_REQUEST)]
    before = polar_calls(stack, "/v1/events/ingest")
    began = time.perf_counter()
    post_ms = []
    for r in range(USAGE_REQUESTS):
        chunk = ids[r * EVENTS_PER_REQUEST : (r + 1) * EVENTS_PER_REQUEST]
        events = [
            {"name": "api_call", "external_customer_id": CUSTOMER, "external_id": x, "metadata": {"n": i}}
            for i, x in enumerate(chunk)
        ]
        sent = time.perf_counter()
        answer = api.post("/api/v1/usage", json={"events": events})
        post_ms.append((time.perf_counter() - sent) * 1000)
        assert answer.status_code == 202, (answer.status_code, answer.text[:500])
        assert answer.json()["accepted"] == EVENTS_PER_REQUEST, answer.json()
    posted = time.perf_counter()
    assert stack.engine is not None
    deadline = time.monotonic() + INGEST_TIMEOUT
    with stack.engine.connect() as db:
        while True:
            counts = dict(db.execute(INGESTED_SQL, {"i": integration_id}).all())
            db.rollback()
            if counts.get("ingested", 0) + counts.get("failed", 0) >= len(ids):
                break
            if time.monotonic() > deadline:
                stack.check()
                raise RuntimeError(f"usage not ingested after {INGEST_TIMEOUT:.0f}s: {counts}")
            time.sleep(0.05)
    done = time.perf_counter()
    assert stack.local_polar is not None
    at_polar = stack.local_polar.event_counts()
    exact = counts.get("ingested", 0) == len(ids) and all(at_polar[x] == 1 for x in ids)
    return {
        "usage_calls": polar_calls(stack, "/v1/events/ingest") - before,
        "usage_exact": int(exact),
        "usage_post_ms": statistics.median(post_ms),
        "usage_ingest_s": done - posted,
        "usage_total_s": done - began,
    }


# -- customer state and checkouts ----------------------------------------------------------------


def buy(stack: LocalPolarStack, api: httpx.Client, integration: PolarIntegration, product_id: str) -> None:
    """The customer buys through the local Polar's purchase flow; wait until the platform's state
    knows them (its webhook events processed by the worker) or the deadline passes."""
    httpx.post(
        f"{stack.polar_url}/_emulator/simulate/purchase",
        json={
            "organization_id": integration.polar_org_id,
            "product_id": product_id,
            "external_customer_id": CUSTOMER,
        },
        timeout=30,
    ).raise_for_status()
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        state = api.get(f"/api/v1/customers/{CUSTOMER}/state")
        if (
            state.status_code == 200
            and state.json().get("source") == "local"
            and state.json()["active_subscriptions"]
        ):
            return
        time.sleep(0.2)


def state_phase(api: httpx.Client, sdk: Any, token: str, calls: int) -> dict[str, Any]:
    source = _ok(api.get(f"/api/v1/customers/{CUSTOMER}/state")).json().get("source", "polar")
    ours, direct = paired_medians(
        lambda: _ok(api.get(f"/api/v1/customers/{CUSTOMER}/state")),
        lambda: direct_state(sdk, token),
        calls,
    )
    print(f"customer state: {ours:.1f} ms through the API ({source}), {direct:.1f} ms from Polar", flush=True)
    return {"state_ratio": ours / direct, "state_ms": ours, "state_direct_ms": direct, "state_source": source}


def checkout_phase(api: httpx.Client, sdk: Any, token: str, product_id: str, calls: int) -> dict[str, Any]:
    n = iter(range(10**6))

    def ours() -> Any:
        body = {"plan": "pro-monthly", "external_customer_id": f"c-{next(n)}", "success_url": SUCCESS_URL}
        return _ok(api.post("/api/v1/checkouts", json=body), 201)

    def direct() -> Any:
        return sdk.checkouts.create(
            products=[product_id],
            external_customer_id=f"d-{next(n)}",
            success_url=SUCCESS_URL,
            request_access_token=token,
        )

    ours_ms, direct_ms = paired_medians(ours, direct, calls)
    print(f"checkout: {ours_ms:.1f} ms through the API, {direct_ms:.1f} ms directly", flush=True)
    return {"checkout_ratio": ours_ms / direct_ms, "checkout_ms": ours_ms, "checkout_direct_ms": direct_ms}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--calls", type=int, default=30, help="calls timed per figure (median)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="connect-polar-tenant-api-bench-"))
    stack = LocalPolarStack(workdir, [])
    figures: dict[str, Any] = {}
    try:
        stack.start()
        workspace_id, integration_id = connect_workspace(stack, 1)
        key = api_key(stack, workspace_id)
        settings = Settings.from_env(stack.env)
        assert stack.engine is not None
        with Session(stack.engine) as db:
            integration = db.get(PolarIntegration, integration_id)
            assert integration is not None
            products = {m.plan_id: m.polar_product_id for m in integration.product_mappings}
            token = access_token(settings, integration)
            db.expunge_all()
        sdk = polar_sdk(stack.polar_url)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=stack.web_url, headers=headers, timeout=60) as api:
            buy(stack, api, integration, products["pro-monthly"])
            httpx.post(
                f"{stack.polar_url}/_emulator/faults", json={"path": "/v1/*", "latency_ms": args.latency_ms}
            ).raise_for_status()
            # Usage last: 10,000 events in the local Polar's log would slow its side of the state.
            settle(stack)
            figures |= state_phase(api, sdk, token, args.calls)
            settle(stack)
            figures |= checkout_phase(api, sdk, token, products["pro-monthly"], args.calls)
            settle(stack)
            figures |= usage(stack, api, integration_id)
            print(
                f"usage: {USAGE_REQUESTS}×{EVENTS_PER_REQUEST} events posted (median "
                f"{figures['usage_post_ms']:.0f} ms a request), ingested {figures['usage_ingest_s']:.1f} s "
                f"after the last in {figures['usage_calls']} Polar calls; exactly once: "
                f"{bool(figures['usage_exact'])}",
                flush=True,
            )
    except BaseException:
        for proc in stack.procs:
            print(f"--- {proc.name} ({proc.log}):\n{proc.tail()}", file=sys.stderr)
        raise
    finally:
        stack.stop()
        if args.keep_logs:
            print(f"logs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"usage_calls={figures['usage_calls']} usage_exact={figures['usage_exact']} "
        f"state_ratio={figures['state_ratio']:.3f} checkout_ratio={figures['checkout_ratio']:.3f} "
        f"state_source={figures['state_source']} state_ms={figures['state_ms']:.1f} "
        f"state_direct_ms={figures['state_direct_ms']:.1f} checkout_ms={figures['checkout_ms']:.1f} "
        f"checkout_direct_ms={figures['checkout_direct_ms']:.1f} usage_ingest_s={figures['usage_ingest_s']:.2f} "
        f"usage_post_ms={figures['usage_post_ms']:.0f} latency_ms={args.latency_ms:.0f}"
    )


def _ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    assert response.status_code == status, (response.status_code, response.text[:500])
    return response


PENDING_SQL = sa.text(
    "SELECT (SELECT count(*) FROM polar_webhook_event WHERE status = 'pending')"
    " + (SELECT count(*) FROM usage_event WHERE status = 'pending')"
)


def settle(stack: Stack, timeout: float = 60.0) -> None:
    """Wait until the platform has nothing left to do from the phase before (webhook events to
    process, jobs queued), so a timed phase measures the endpoints, not a backlog."""
    assert stack.engine is not None
    connection = redis.Redis.from_url(stack.redis_url)
    queues = [Queue(name, connection=connection) for name in ("billing", "provisioning")]
    deadline = time.monotonic() + timeout
    try:
        with stack.engine.connect() as db:
            while time.monotonic() < deadline:
                pending = db.execute(PENDING_SQL).scalar_one()
                db.rollback()
                if not pending and not any(q.count for q in queues):
                    return
                time.sleep(0.1)
    finally:
        connection.close()


def direct_state(sdk: Any, token: str) -> Any:
    """Polar's ``GET /v1/customers/external/{id}/state`` through polar-sdk's transport (warm, keep-alive),
    read as JSON (polar-sdk 1.0.2 cannot load a state with an active subscription)."""
    client = sdk.customers.client
    request = client.build_request(
        method="GET",
        url="/v1/customers/external/{external_id}/state",
        path_params={"external_id": CUSTOMER},
        request_timeout=None,
        request_access_token=token,
    )
    response = client.send_request(request)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.json()


if __name__ == "__main__":
    main()
