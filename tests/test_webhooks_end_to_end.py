"""The loop closes: provisioning registers our endpoint, the emulator (as Polar) delivers signed
events to the app over real HTTP, and the app records each one once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from polar_emulator import EmulatorServer
from werkzeug.serving import make_server

from app import create_app
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.reconcile.webhook import WEBHOOK_EVENTS
from provisioning.runs.jobs import provision
from provisioning.status import status_snapshot
from provisioning.webhooks.models import PolarWebhookEvent
from tests.committed import connect_committed, platform_env


@pytest.fixture
def live_app(
    committing_database: Database, emulator: EmulatorServer, pg_url: str, redis_url: str
) -> Iterator[tuple[str, Settings]]:
    """The web app on a real port, so the emulator can reach it."""
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    base_url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings.from_env(
        platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url, public_base_url=base_url)
    )
    server.app = create_app(settings, database=committing_database)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base_url, settings
    server.shutdown()
    thread.join(timeout=10)


def test_events_of_a_purchase_reach_the_app_signed_and_are_recorded_once(
    live_app: tuple[str, Settings], committing_database: Database, control: httpx.Client
) -> None:
    _, settings = live_app
    connected = connect_committed(committing_database, settings, name="E2E")
    run_id, integration_id, workspace_id = connected.run_id, connected.integration_id, connected.workspace_id
    assert provision(run_id, settings)["status"] == "succeeded"
    with committing_database.transaction() as session:
        integration = session.get(PolarIntegration, integration_id)
        org_id, endpoint_id = integration.polar_org_id, integration.webhook_endpoint_id
        product_id = next(
            m.polar_product_id for m in integration.product_mappings if m.plan_id == "pro-monthly"
        )

    bought = control.post(
        "/_emulator/simulate/purchase",
        json={"organization_id": org_id, "product_id": product_id, "external_customer_id": "tenant-user-1"},
    )
    assert bought.status_code == 201, bought.text

    # Wait, with a deadline, until every event the emulator raised for our endpoint was answered.
    deadline = time.monotonic() + 30
    while True:
        events = control.get("/_emulator/webhook-events", params={"endpoint_id": endpoint_id}).json()
        deliveries = control.get("/_emulator/webhook-deliveries", params={"endpoint_id": endpoint_id}).json()
        answered = {d["webhook_id"] for d in deliveries if d.get("http_code") == 202}
        if events and all(e["id"] in answered for e in events):
            break
        assert time.monotonic() < deadline, (
            [(e["id"], e["type"]) for e in events],
            [
                (d["webhook_id"], d["type"], d["attempt"], d.get("http_code"), d.get("error"))
                for d in deliveries
            ],
        )
        time.sleep(0.05)

    # Events raised while the run was still storing the endpoint's secret were answered 503 and
    # retried by Polar; nothing else failed.
    assert {d.get("http_code") for d in deliveries} <= {202, 503}, deliveries
    with committing_database.transaction() as session:
        rows = session.scalars(
            sa.select(PolarWebhookEvent).where(PolarWebhookEvent.integration_id == integration_id)
        ).all()
    assert sorted(r.webhook_id for r in rows) == sorted(e["id"] for e in events)
    types = {r.event_type for r in rows}
    assert {"order.created", "subscription.created", "subscription.active", "customer.state_changed"} <= types
    assert types <= set(WEBHOOK_EVENTS)
    with committing_database.transaction() as session:
        summary = status_snapshot(session, workspace_id)["webhooks"]
    assert summary["received"] == len(rows)
    assert summary["last_type"] in types
