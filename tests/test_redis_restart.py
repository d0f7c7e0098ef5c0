"""Redis restarted (empty: nothing persisted) while a run waits for its scheduled retry: the retry is
lost with Redis, yet the run is picked up again within seconds of Redis answering and finishes.
A real worker process (``python worker.py``), a redis-server of the test's own, the local Polar."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from polar_emulator import EmulatorServer
from rq.registry import ScheduledJobRegistry

from provisioning.config import Settings
from provisioning.db import Database
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.queue import QUEUE_NAME, enqueue_run
from tests.committed import connect_committed, platform_env

ROOT = Path(__file__).resolve().parent.parent
RESUME_DEADLINE = 20.0  # seconds from Redis answering again to the run being ready


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


class PrivateRedis:
    """A redis-server on a Unix socket of this test's own, which the test can stop and restart."""

    def __init__(self) -> None:
        binary = shutil.which(os.environ.get("TEST_REDIS_SERVER", "redis-server"))
        assert binary is not None, "redis-server not found"
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="connect-polar-redis-restart-"))
        self.socket = self.workdir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        _wait_for(lambda: self._answers(client), "redis-server to answer", timeout=10)
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


def test_a_retry_lost_with_a_redis_restart_resumes_within_seconds(
    committing_database: Database,
    pg_url: str,
    private_redis: PrivateRedis,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    env = platform_env(pg_url=pg_url, redis_url=private_redis.url, polar_url=emulator.url)
    env |= {"RUN_LEASE_SECONDS": "2", "SWEEP_EVERY_SECONDS": "0.5"}
    settings = Settings.from_env(env)
    # Listing products fails on every attempt of the first try: the run is handed to RQ's retry.
    control.post(
        "/_emulator/faults", json={"path": "/v1/products/", "method": "GET", "status": 503, "count": 4}
    ).raise_for_status()
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        connected = connect_committed(committing_database, settings, name="Redis Restart")
        enqueue_run(connected.run_id, settings.redis_url)

        def retrying() -> bool:
            with committing_database.transaction() as session:
                run = session.get(ProvisioningRun, connected.run_id)
                assert run is not None
                return run.status == RunStatus.QUEUED and "retrying" in (run.error or "")

        _wait_for(retrying, "the first attempt to fail")
        scheduled = ScheduledJobRegistry(QUEUE_NAME, connection=redis.Redis.from_url(private_redis.url))
        _wait_for(lambda: scheduled.count == 1, "RQ to schedule the retry (it lives in Redis only)")

        private_redis.kill()  # the retry goes with it
        private_redis.start()
        back = time.monotonic()
        # Redis lost everything: the retry is gone (the worker's sweeper may already have written
        # its own keys again).
        assert ScheduledJobRegistry(QUEUE_NAME, connection=redis.Redis.from_url(private_redis.url)).count == 0

        def ready() -> bool:
            with committing_database.transaction() as session:
                run = session.get(ProvisioningRun, connected.run_id)
                return run is not None and run.status == RunStatus.SUCCEEDED

        done = _wait_for(ready, "the run to be picked up again and finish", timeout=RESUME_DEADLINE)
        print(f"ready {done - back:.1f}s after Redis answered again")
        assert worker.poll() is None  # the worker rode out the restart
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
