"""``python worker.py`` as its own process, as the Procfile runs it: a queued run reaches ``ready``.

The other job tests run the job in the test process, where every model is already imported; this
one catches what only a separate worker process would meet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.accounts.models import Membership, User, Workspace
from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.queue import enqueue_run
from provisioning.runs.models import ProvisioningRun
from tests.provisioning.conftest import consent

ROOT = Path(__file__).resolve().parent.parent


def test_a_separate_worker_process_provisions_a_queued_run(
    committing_database: Database, pg_url: str, redis_url: str, emulator: EmulatorServer
) -> None:
    key = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "POLAR_API_URL": emulator.url,
        "POLAR_WEB_URL": emulator.url,
        "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
        "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "POLAR_OAUTH_REDIRECT_URI": DEMO_REDIRECT_URI,
        "POLAR_TOKEN_ENCRYPTION_KEY": key,
    }
    settings = Settings.from_env(env)

    with committing_database.transaction() as session:
        user = User(email="owner@worker.test", password_hash="x")
        workspace = Workspace(name="Worker Test")
        session.add_all([user, workspace])
        session.flush()
        session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
        user_id, workspace_id = user.id, workspace.id
    with committing_database.transaction() as session:
        start = begin_connect(session, settings, workspace_id=workspace_id, user_id=user_id)
    code, state = consent(start.authorize_url)
    with committing_database.transaction() as session:
        integration = complete_connect(
            session, settings, state=state, code=code, user_id=user_id, browser_nonce=start.nonce
        )
        integration_id = integration.id
        run_id = session.scalar(
            sa.select(ProvisioningRun.id).where(ProvisioningRun.integration_id == integration_id)
        )
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
    assert key not in result.stderr + result.stdout
