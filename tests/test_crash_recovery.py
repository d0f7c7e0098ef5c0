"""A worker killed mid-run (SIGKILL, as an OOM kill, a lost machine or a deploy's grace period
running out would) and, separately, only the job process running the run (the pool's equivalent
of RQ's work-horse, ``runs.pool``), at five points of a run: the run's lease lapses, the run is put
back to queued and resumed by the next job, and it is ``ready`` within seconds of the kill with
exactly one object per plan at Polar and the webhook secret Polar holds. A warm shutdown (SIGTERM)
finishes the run under way. Real worker processes (``python worker.py``), with the lease and the
sweeper compressed by their settings.

Each kill point is held by something observable, and the test waits for it, never for time:

- ``reads``: every read is held at Polar (the account check and the four list calls), no write
  has been sent;
- ``meters_and_benefits``: meters and benefits exist at Polar, the product creates are held;
- ``products``: every product exists at Polar, attaching their benefits is held;
- ``endpoint``: Polar created the webhook endpoint but holds its answer, so our process never got
  the endpoint's secret (none is stored);
- ``mappings``: the run is inserting its product mappings, held by a lock on their table.

Polar's held calls answer 503 when the hold ends (long after the test), so a call whose caller was
killed never lands later, e.g. in another test's Polar.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from polar_emulator import EmulatorServer
from rq import Worker
from rq.serializers import JSONSerializer

from provisioning.catalog import load_catalog
from provisioning.catalog.desired import WORKSPACE_KEY
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token, decrypt_secret
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus
from provisioning.runs.queue import enqueue_run, job_id
from tests.committed import Connected, connect_committed, platform_env

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = "2"  # the run's lease: it lapses 2 s after its worker dies
SWEEP_SECONDS = "0.5"
RESUME_DEADLINE = 30.0  # the run is ready within this many seconds of the kill
HOLD_MS = 60_000  # longer than any test: a held call is only ever released by the kill


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Poll until ``predicate`` holds; returns when (monotonic). Fails at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


def _hold(path: str, method: str, **extra: Any) -> dict[str, Any]:
    """An emulator fault that holds matching calls for longer than the test, then fails them."""
    return {"path": path, "method": method, "latency_ms": HOLD_MS, "status": 503, **extra}


class Platform:
    def __init__(self, database: Database, env: dict[str, str], control: httpx.Client) -> None:
        self.database = database
        self.env = env
        self.settings = Settings.from_env(env)
        self.control = control
        self.catalog = load_catalog(self.settings.plans_file)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def run_status(self, run_id: str) -> RunStatus | None:
        with self.database.transaction() as session:
            run = session.get(ProvisioningRun, run_id)
            return run.status if run is not None else None

    def step_status(self, run_id: str, name: str) -> StepStatus | None:
        with self.database.transaction() as session:
            return session.scalar(
                sa.select(ProvisioningStep.status).where(
                    ProvisioningStep.run_id == run_id, ProvisioningStep.name == name
                )
            )

    def integration(self, connected: Connected) -> PolarIntegration:
        with self.database.transaction() as session:
            integration = session.get(PolarIntegration, connected.integration_id)
            assert integration is not None
            session.expunge(integration)
            return integration

    def calls(self, method: str, path: str, status: int) -> int:
        """Completed calls at Polar (a held call is logged once it is answered)."""
        log = self.control.get("/_emulator/requests").json()
        return sum(c["method"] == method and c["path"] == path and c["status"] == status for c in log)

    def held(self) -> int:
        """Calls a fault of the test is holding (or has held) at Polar."""
        return sum(f["hits"] for f in self.control.get("/_emulator/faults").json())

    def polar(self, connected: Connected, path: str, **params: Any) -> dict[str, Any]:
        integration = self.integration(connected)
        token = access_token(self.settings, integration)
        params = {"organization_id": integration.polar_org_id, "limit": 100, **params}
        response = self.control.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return response.json()

    def job_process(self, run_id: str) -> int | None:
        """The pid of the process running the run's job (RQ's registration of the worker running it)."""
        connection = redis.Redis.from_url(self.settings.redis_url)
        try:
            for worker in Worker.all(connection=connection, serializer=JSONSerializer):
                if worker.get_current_job_id() == job_id(run_id):
                    return worker.pid
            return None
        finally:
            connection.close()

    def assert_one_object_per_plan(self, connected: Connected) -> None:
        integration = self.integration(connected)
        assert integration.status == "ready"
        with self.database.transaction() as session:
            mapped = session.get(PolarIntegration, connected.integration_id)
            assert mapped is not None
            assert len(mapped.product_mappings) == len(self.catalog.plans)

        def ours(path: str) -> list[dict[str, Any]]:
            items = self.polar(connected, path)["items"]
            return [
                i for i in items if (i.get("metadata") or {}).get(WORKSPACE_KEY) == connected.workspace_id
            ]

        assert len(ours("/v1/products/")) == len(self.catalog.plans)
        assert len(ours("/v1/benefits/")) == len(self.catalog.benefits)
        assert len(ours("/v1/meters/")) == len(self.catalog.meters)
        endpoints = self.polar(connected, "/v1/webhooks/endpoints")
        assert endpoints["pagination"]["total_count"] == 1
        [endpoint] = endpoints["items"]
        # The secret we verify deliveries with is the one Polar signs them with.
        assert integration.webhook_endpoint_id == endpoint["id"]
        assert integration.webhook_secret is not None
        stored = decrypt_secret(self.settings, integration.id, "webhook_secret", integration.webhook_secret)
        assert stored == endpoint["secret"]


@pytest.fixture
def platform(
    committing_database: Database,
    pg_url: str,
    redis_url: str,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> Iterator[Platform]:
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    env |= {"RUN_LEASE_SECONDS": LEASE_SECONDS, "SWEEP_EVERY_SECONDS": SWEEP_SECONDS}
    platform = Platform(committing_database, env, control)
    yield platform
    for worker in platform.workers:
        for pid in [*_descendants(worker.pid), worker.pid]:
            _kill(pid)
        worker.wait(timeout=10)


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- the kill points ----------------------------------------------------------------------------


@dataclass
class KillPoint:
    """How a run is held at one point of the saga, how the test knows it is there, and how the
    hold is released once the process is killed."""

    name: str
    faults: tuple[dict[str, Any], ...] = ()
    reached: Callable[[Platform, Connected], bool] = lambda platform, connected: platform.held() > 0
    lock_mappings: bool = False


def _at_reads(platform: Platform, connected: Connected) -> bool:
    return platform.held() >= 5 and platform.calls("POST", "/v1/meters/", 201) == 0


def _after_meters_and_benefits(platform: Platform, connected: Connected) -> bool:
    return platform.held() > 0 and platform.calls("POST", "/v1/benefits/", 201) == len(
        platform.catalog.benefits
    )


def _after_products(platform: Platform, connected: Connected) -> bool:
    return platform.held() > 0 and platform.calls("POST", "/v1/products/", 201) == len(platform.catalog.plans)


def _endpoint_without_secret(platform: Platform, connected: Connected) -> bool:
    if not platform.polar(connected, "/v1/webhooks/endpoints")["items"]:
        return False
    assert platform.integration(connected).webhook_secret is None  # our process never got it
    return True


def _in_mappings(platform: Platform, connected: Connected) -> bool:
    if platform.step_status(connected.run_id, "save_mappings") != StepStatus.RUNNING:
        return False
    with platform.database.transaction() as session:  # the run's insert is waiting for the lock
        return bool(
            session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


KILL_POINTS = [
    KillPoint("reads", (_hold("/v1/*", "GET"),), _at_reads),
    KillPoint("meters_and_benefits", (_hold("/v1/products/", "POST"),), _after_meters_and_benefits),
    KillPoint("products", (_hold("/v1/products/*/benefits", "POST"),), _after_products),
    KillPoint(
        "endpoint",
        # Polar creates the endpoint, then holds the answer that carries its secret.
        ({"path": "/v1/webhooks/endpoints", "method": "POST", "latency_ms": HOLD_MS, "when": "after"},),
        _endpoint_without_secret,
    ),
    KillPoint("mappings", (), _in_mappings, lock_mappings=True),
]


@contextlib.contextmanager
def _held_mid_run(
    platform: Platform, point: KillPoint, name: str
) -> Iterator[tuple[Connected, subprocess.Popen[bytes], Callable[[], None]]]:
    """A connect whose run a worker process has taken to ``point`` and is held there. Yields the
    connection, the worker and ``release`` (call it right after the kill)."""
    connected = connect_committed(platform.database, platform.settings, name=name)
    for fault in point.faults:
        platform.control.post("/_emulator/faults", json=fault).raise_for_status()
    lock = platform.database.engine.connect() if point.lock_mappings else None
    if lock is not None:
        lock.begin()
        lock.execute(sa.text("LOCK TABLE polar_product_mapping IN EXCLUSIVE MODE"))

    def release() -> None:
        platform.control.delete("/_emulator/faults").raise_for_status()
        if lock is not None and not lock.closed:
            lock.rollback()
            lock.close()

    try:
        worker = platform.start_worker()
        enqueue_run(connected.run_id, platform.settings.redis_url)
        _wait_for(lambda: point.reached(platform, connected), f"the run to be held at {point.name}")
        assert platform.run_status(connected.run_id) == RunStatus.RUNNING
        yield connected, worker, release
    finally:
        release()


def _assert_resumed(platform: Platform, connected: Connected, killed: float, what: str) -> None:
    done = _wait_for(
        lambda: platform.run_status(connected.run_id) == RunStatus.SUCCEEDED,
        "the run to be resumed and finished",
        timeout=RESUME_DEADLINE,
    )
    print(f"{what}: ready {done - killed:.1f}s after the kill")
    platform.assert_one_object_per_plan(connected)
    with platform.database.transaction() as session:
        run = session.get(ProvisioningRun, connected.run_id)
        assert run is not None and run.attempts == 2 and run.error is None


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.name)
def test_a_killed_worker_s_run_resumes_on_the_next_worker_within_seconds(
    platform: Platform, point: KillPoint
) -> None:
    with _held_mid_run(platform, point, f"Crash Worker {point.name}") as (connected, worker, release):
        killed = time.monotonic()
        os.killpg(worker.pid, signal.SIGKILL)  # the worker, its job processes and RQ's scheduler
        worker.wait(timeout=10)
        release()
        platform.start_worker()  # the platform restarts the worker

    _assert_resumed(platform, connected, killed, f"worker killed at {point.name}")


@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: p.name)
def test_a_killed_job_process_s_run_resumes_on_the_same_worker_within_seconds(
    platform: Platform, point: KillPoint
) -> None:
    with _held_mid_run(platform, point, f"Crash Job {point.name}") as (connected, worker, release):
        pid = platform.job_process(connected.run_id)
        assert pid is not None and pid in _children(worker.pid)
        killed = time.monotonic()
        _kill(pid)  # only the job process: the worker lives on, starts another and resumes the run
        release()

    _assert_resumed(platform, connected, killed, f"job process killed at {point.name}")
    assert worker.poll() is None  # the worker itself lived on and did it


def test_a_warm_shutdown_finishes_the_run_under_way(platform: Platform) -> None:
    connected = connect_committed(platform.database, platform.settings, name="Warm Shutdown")
    platform.control.post(
        "/_emulator/faults", json={"path": "/v1/products/*/benefits", "latency_ms": 1500}
    ).raise_for_status()
    worker = platform.start_worker()
    enqueue_run(connected.run_id, platform.settings.redis_url)
    _wait_for(lambda: platform.held() > 0, "Polar to hold attaching benefits")

    worker.send_signal(signal.SIGTERM)  # a deploy: each job process finishes its job, then stops

    assert worker.wait(timeout=RESUME_DEADLINE) == 0
    assert platform.run_status(connected.run_id) == RunStatus.SUCCEEDED
    platform.assert_one_object_per_plan(connected)
