"""``python worker.py`` as its own process, as the Procfile runs it: a queued run reaches ``ready``.

The other job tests run the job in the test process, where every model is already imported; this
one catches what only a separate worker process would meet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from polar_emulator import EmulatorServer

from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun
from provisioning.runs.queue import enqueue_run
from tests.committed import connect_committed, platform_env

ROOT = Path(__file__).resolve().parent.parent


def test_a_separate_worker_process_provisions_a_queued_run(
    committing_database: Database, pg_url: str, redis_url: str, emulator: EmulatorServer
) -> None:
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    settings = Settings.from_env(env)
    connected = connect_committed(committing_database, settings, name="Worker Test")
    run_id, integration_id = connected.run_id, connected.integration_id
    enqueue_run(run_id, redis_url)

    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    with committing_database.transaction() as session:
        run = session.get(ProvisioningRun, run_id)
        integration = session.get(PolarIntegration, integration_id)
        assert run is not None and integration is not None
        assert run.status == "succeeded", (run.error, result.stderr[-3000:])
        assert integration.status == "ready"
        assert len(integration.product_mappings) == 4
    # Nothing secret in what the worker printed.
    assert env["POLAR_TOKEN_ENCRYPTION_KEY"] not in result.stderr + result.stdout
