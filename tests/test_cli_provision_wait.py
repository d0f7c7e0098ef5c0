"""``flask provision WORKSPACE --wait`` against a real worker process: it waits for the run and
prints each step, as support staff would use it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from polar_emulator import EmulatorServer

from app import create_app
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.runs.jobs import provision
from tests.committed import connect_committed, platform_env

ROOT = Path(__file__).resolve().parent.parent


def test_provision_wait_follows_the_run_to_its_end(
    committing_database: Database, pg_url: str, redis_url: str, emulator: EmulatorServer
) -> None:
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    settings = Settings.from_env(env)
    connected = connect_committed(committing_database, settings, name="Support")
    assert provision(connected.run_id, settings)["status"] == "succeeded"
    app = create_app(settings, database=committing_database)

    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--simple"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result = app.test_cli_runner().invoke(
            args=["provision", connected.workspace_id, "--wait", "--timeout", "60"]
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)

    assert result.exit_code == 0, (result.output, stderr[-2000:])
    lines = result.output.splitlines()
    assert lines[0].startswith("run ") and lines[0].endswith(" queued")
    assert lines[-1] == f"{lines[0].split()[0]} {lines[0].split()[1]} succeeded"
    steps = [line.split()[:2] for line in lines[1:-1]]
    assert [name for name, _ in steps] == [
        "verify_account",
        "resolve_organization",
        "ensure_meters",
        "ensure_benefits",
        "ensure_products",
        "ensure_webhook_endpoint",
        "save_mappings",
    ]
    assert all(status == "succeeded" for _, status in steps)
