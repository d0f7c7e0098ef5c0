"""A worker killed mid-run (SIGKILL, as an OOM kill, a lost machine or a deploy's grace period
running out would) and, separately, only its work-horse: the run's lease lapses, the run is put back
to queued and resumed by the next job, and it is ``ready`` within seconds with exactly one object
per plan at Polar. A warm shutdown (SIGTERM) finishes the run under way. Real worker processes
(``python worker.py``), with the lease and the sweeper compressed by their settings."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from polar_emulator import EmulatorServer

from provisioning.catalog import load_catalog
from provisioning.catalog.desired import WORKSPACE_KEY
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.queue import enqueue_run
from tests.committed import Connected, connect_committed, platform_env

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = "2"  # the run's lease: it lapses 2 s after its worker dies
SWEEP_SECONDS = "0.5"
RESUME_DEADLINE = 30.0  # the run is ready within this many seconds of the kill
HELD_PATH = "/v1/products/*/benefits"  # attaching benefits hangs: products exist, mappings not yet


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Poll until ``predicate`` holds; returns when (monotonic). Fails at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


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

    def products_created(self) -> bool:
        calls = self.control.get("/_emulator/requests").json()
        created = sum(
            c["method"] == "POST" and c["path"] == "/v1/products/" and c["status"] == 201 for c in calls
        )
        return created == len(self.catalog.plans)

    def assert_one_object_per_plan(self, connected: Connected) -> None:
        with self.database.transaction() as session:
            integration = session.get(PolarIntegration, connected.integration_id)
            assert integration is not None
            token, org_id = access_token(self.settings, integration), integration.polar_org_id
            assert integration.status == "ready"
            assert len(integration.product_mappings) == len(self.catalog.plans)
        headers = {"Authorization": f"Bearer {token}"}

        def ours(path: str) -> list[dict]:
            items = self.control.get(
                path, params={"organization_id": org_id, "limit": 100}, headers=headers
            ).json()["items"]
            return [
                i for i in items if (i.get("metadata") or {}).get(WORKSPACE_KEY) == connected.workspace_id
            ]

        assert len(ours("/v1/products/")) == len(self.catalog.plans)
        assert len(ours("/v1/benefits/")) == len(self.catalog.benefits)
        assert len(ours("/v1/meters/")) == len(self.catalog.meters)
        endpoints = self.control.get(
            "/v1/webhooks/endpoints", params={"organization_id": org_id}, headers=headers
        ).json()
        assert endpoints["pagination"]["total_count"] == 1


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
        for pid in [*_children(worker.pid), worker.pid]:
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


def _work_horse(worker_pid: int) -> int | None:
    """RQ's work-horse: the worker's child that leads its own process group (the scheduler does not)."""
    for child in _children(worker_pid):
        try:
            if os.getpgid(child) == child:
                return child
        except ProcessLookupError:
            continue
    return None


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _held_mid_run(platform: Platform, name: str) -> tuple[Connected, subprocess.Popen[bytes], int]:
    """A connect whose run a worker process has taken to Polar's product creates, and is held there."""
    connected = connect_committed(platform.database, platform.settings, name=name)
    platform.control.post(
        "/_emulator/faults", json={"path": HELD_PATH, "latency_ms": 60000}
    ).raise_for_status()
    worker = platform.start_worker()
    enqueue_run(connected.run_id, platform.settings.redis_url)
    _wait_for(platform.products_created, "Polar to create every product")
    horse = _work_horse(worker.pid)
    assert horse is not None
    return connected, worker, horse


def test_a_killed_worker_s_run_resumes_on_the_next_worker_within_seconds(platform: Platform) -> None:
    connected, worker, horse = _held_mid_run(platform, "Crash Worker")

    killed = time.monotonic()
    os.killpg(worker.pid, signal.SIGKILL)  # the worker (and its scheduler)...
    _kill(horse)  # ...and its work-horse, which leads a process group of its own
    worker.wait(timeout=10)
    platform.control.delete("/_emulator/faults").raise_for_status()
    platform.start_worker()  # the platform restarts the worker

    done = _wait_for(
        lambda: platform.run_status(connected.run_id) == RunStatus.SUCCEEDED,
        "the run to be resumed and finished",
        timeout=RESUME_DEADLINE,
    )
    print(f"worker killed: ready {done - killed:.1f}s after the kill")
    platform.assert_one_object_per_plan(connected)
    with platform.database.transaction() as session:
        run = session.get(ProvisioningRun, connected.run_id)
        assert run is not None and run.attempts == 2 and run.error is None


def test_a_killed_work_horse_s_run_resumes_on_the_same_worker_within_seconds(platform: Platform) -> None:
    connected, worker, horse = _held_mid_run(platform, "Crash Horse")

    killed = time.monotonic()
    _kill(horse)
    platform.control.delete("/_emulator/faults").raise_for_status()

    done = _wait_for(
        lambda: platform.run_status(connected.run_id) == RunStatus.SUCCEEDED,
        "the run to be resumed and finished",
        timeout=RESUME_DEADLINE,
    )
    print(f"work-horse killed: ready {done - killed:.1f}s after the kill")
    assert worker.poll() is None  # the worker itself lived on and did it
    platform.assert_one_object_per_plan(connected)


def test_a_warm_shutdown_finishes_the_run_under_way(platform: Platform) -> None:
    connected = connect_committed(platform.database, platform.settings, name="Warm Shutdown")
    platform.control.post(
        "/_emulator/faults", json={"path": HELD_PATH, "latency_ms": 1500}
    ).raise_for_status()
    worker = platform.start_worker()
    enqueue_run(connected.run_id, platform.settings.redis_url)
    _wait_for(platform.products_created, "Polar to create every product")

    worker.send_signal(signal.SIGTERM)  # a deploy: RQ's warm shutdown waits for the current job

    assert worker.wait(timeout=RESUME_DEADLINE) == 0
    assert platform.run_status(connected.run_id) == RunStatus.SUCCEEDED
    platform.assert_one_object_per_plan(connected)
