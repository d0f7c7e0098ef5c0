"""A worker killed mid-run (SIGKILL, as an OOM kill or a dyno restart would) leaves Polar with
objects our database never heard of; the next run finds them by metadata instead of duplicating."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.accounts.models import Membership, User, Workspace
from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from provisioning.catalog import load_catalog
from provisioning.catalog.desired import WORKSPACE_KEY
from provisioning.config import Settings
from provisioning.connect.service import begin_connect, complete_connect
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.queue import enqueue_run
from provisioning.runs.models import ProvisioningRun
from provisioning.runs.service import create_run
from provisioning.tasks import provision
from tests.provisioning.conftest import consent

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_run_killed_after_polar_created_products_is_finished_by_the_next_run_without_duplicates(
    committing_database: Database,
    pg_url: str,
    redis_url: str,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "crash-test-secret-key-0123456789abcdef",
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "POLAR_API_URL": emulator.url,
        "POLAR_WEB_URL": emulator.url,
        "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
        "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "POLAR_OAUTH_REDIRECT_URI": DEMO_REDIRECT_URI,
        "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    settings = Settings.from_env(env)
    catalog = load_catalog(settings.plans_file)
    with committing_database.transaction() as session:
        user, workspace = User(email="owner@crash.test", password_hash="x"), Workspace(name="Crash")
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

    # Attaching benefits hangs, so the worker is caught after Polar created the products and
    # before anything of them reached our database.
    control.post(
        "/_emulator/faults", json={"path": "/v1/products/*/benefits", "latency_ms": 30000}
    ).raise_for_status()
    enqueue_run(run_id, redis_url)
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--burst"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def products_created() -> bool:
            calls = control.get("/_emulator/requests").json()
            return sum(
                c["method"] == "POST" and c["path"] == "/v1/products/" and c["status"] == 201 for c in calls
            ) == len(catalog.plans)

        _wait_for(products_created, "Polar to create every product")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse, mid-run
        worker.wait(timeout=10)
    control.delete("/_emulator/faults").raise_for_status()

    with committing_database.transaction() as session:
        integration = session.get(PolarIntegration, integration_id)
        assert integration.product_mappings == []  # the crash came before our commit
        retry = create_run(session, integration, trigger="admin")
        retry_id = retry.id
    assert provision(retry_id, settings)["status"] == "succeeded"

    with committing_database.transaction() as session:
        integration = session.get(PolarIntegration, integration_id)
        token, org_id = access_token(settings, integration), integration.polar_org_id
        assert integration.status == "ready" and len(integration.product_mappings) == len(catalog.plans)
    headers = {"Authorization": f"Bearer {token}"}

    def ours(path: str) -> list[dict]:
        items = control.get(path, params={"organization_id": org_id, "limit": 100}, headers=headers).json()[
            "items"
        ]
        return [i for i in items if (i.get("metadata") or {}).get(WORKSPACE_KEY) == workspace_id]

    assert len(ours("/v1/products/")) == len(catalog.plans)
    assert len(ours("/v1/benefits/")) == len(catalog.benefits)
    assert len(ours("/v1/meters/")) == len(catalog.meters)
    endpoints = control.get(
        "/v1/webhooks/endpoints", params={"organization_id": org_id}, headers=headers
    ).json()
    assert endpoints["pagination"]["total_count"] == 1
