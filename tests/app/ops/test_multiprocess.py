"""prometheus-client's multiprocess mode: ``python worker.py`` runs jobs in job processes, whose
metrics a web process's scrape reads from the shared directory; each role empties only its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from polar_emulator import EmulatorServer

from app.ops.metrics import scrape
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.observability import multiproc
from provisioning.runs.queue import enqueue_run
from tests.app.ops.test_ops import samples, value
from tests.committed import connect_committed, platform_env

ROOT = Path(__file__).resolve().parents[3]


def test_prepare_empties_only_its_own_role_and_is_inherited(tmp_path: Path) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "web").mkdir()
    (tmp_path / "worker" / "counter_1.db").write_bytes(b"x")
    (tmp_path / "web" / "counter_2.db").write_bytes(b"x")
    env = {multiproc.ENV: str(tmp_path)}

    assert multiproc.prepare("web", env) == tmp_path / "web"
    assert env[multiproc.ENV] == str(tmp_path / "web")
    assert env[multiproc.PREPARED] == str(tmp_path)
    assert not list((tmp_path / "web").glob("*.db"))
    assert (tmp_path / "worker" / "counter_1.db").exists()  # the worker's are left alone

    # A child (a gunicorn worker) inherits the environment: nothing is emptied again.
    (tmp_path / "web" / "counter_3.db").write_bytes(b"x")
    assert multiproc.prepare("web", env) == tmp_path / "web"
    assert (tmp_path / "web" / "counter_3.db").exists()


def test_a_work_horses_metrics_reach_the_scrape(
    committing_database: Database,
    pg_url: str,
    redis_url: str,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    base = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    settings = Settings.from_env(env)
    connected = connect_committed(committing_database, settings, name="Metrics Test")
    enqueue_run(connected.run_id, redis_url)

    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((base / "worker").glob("*.db")), "the worker wrote no metrics files"

    # The web's view of the same host: prepared for its own role, merging every role's files.
    monkeypatch.setenv(multiproc.ENV, str(base / "web"))
    monkeypatch.setenv(multiproc.PREPARED, str(base))
    scraped = samples(scrape(redis_url, lambda: None).decode())
    assert value(scraped, "connect_polar_provisioning_runs_total", outcome="succeeded") == 1
    assert value(scraped, "connect_polar_polar_calls_total", operation="products.create", status="ok") == 4
    assert (
        value(
            scraped,
            "connect_polar_provisioning_step_duration_seconds_count",
            step="verify_account",
            status="succeeded",
        )
        == 1
    )
