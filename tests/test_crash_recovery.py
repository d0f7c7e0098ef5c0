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
from polar_emulator import EmulatorServer

from provisioning.catalog import load_catalog
from provisioning.catalog.desired import WORKSPACE_KEY
from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.runs.jobs import provision
from provisioning.runs.periodic import reap_run
from provisioning.runs.queue import enqueue_run
from provisioning.runs.service import create_run
from tests.committed import connect_committed, platform_env

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
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    settings = Settings.from_env(env)
    catalog = load_catalog(settings.plans_file)
    connected = connect_committed(committing_database, settings, name="Crash")
    run_id, integration_id, workspace_id = connected.run_id, connected.integration_id, connected.workspace_id

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
    assert reap_run(committing_database, run_id, utcnow())  # the abandoned run is failed first
    with committing_database.transaction() as session:
        integration = session.get(PolarIntegration, integration_id)
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
