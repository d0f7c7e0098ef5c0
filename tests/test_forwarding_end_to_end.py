"""The whole way to a tenant's app: a customer buys at the local Polar, Polar's signed events reach
the platform over HTTP, billing processes them into the connection's state, and the ones that
changed it are forwarded to the tenant's endpoint, signed with the secret the owner was shown."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from polar_emulator import EmulatorServer
from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from standardwebhooks import Webhook
from werkzeug.serving import make_server

from app import create_app
from provisioning.background import BILLING_QUEUE
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.forwarding import service as forwarding
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.jobs import provision
from tests.committed import connect_committed, platform_env
from tests.provisioning.forwarding.support import TenantApp, tenant_app


@pytest.fixture
def live_app(
    committing_database: Database,
    emulator: EmulatorServer,
    pg_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """The web app on a real port, so the local Polar delivers to it; jobs read the same settings."""
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    env = platform_env(
        pg_url=pg_url,
        redis_url=redis_url,
        polar_url=emulator.url,
        public_base_url=f"http://127.0.0.1:{server.server_port}",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(env)
    server.app = create_app(settings, database=committing_database)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def tenant() -> Iterator[TenantApp]:
    with tenant_app() as app:
        yield app


def _run_billing_jobs(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    queue = Queue(BILLING_QUEUE, connection=connection, serializer=JSONSerializer)
    SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
    connection.close()


def test_a_purchase_at_polar_reaches_the_tenants_app_signed(
    live_app: Settings, committing_database: Database, control: httpx.Client, tenant: TenantApp
) -> None:
    settings = live_app
    connected = connect_committed(committing_database, settings, name="Forwarded")
    assert provision(connected.run_id, settings)["status"] == "succeeded"
    with committing_database.transaction() as session:
        integration = session.get(PolarIntegration, connected.integration_id)
        assert integration is not None
        secret = forwarding.save_endpoint(session, settings, integration, tenant.url).secret
        org_id = integration.polar_org_id
        product_id = next(
            m.polar_product_id for m in integration.product_mappings if m.plan_id == "pro-monthly"
        )
    assert secret is not None

    bought = control.post(
        "/_emulator/simulate/purchase",
        json={"organization_id": org_id, "product_id": product_id, "external_customer_id": "tenant-user-7"},
    )
    assert bought.status_code == 201, bought.text

    # Run the billing queue (processing, then forwarding) until the subscription's activation
    # reached the tenant's app, with a deadline.
    deadline = time.monotonic() + 60
    while not any(json.loads(r.body).get("type") == "subscription.active" for r in tenant.received):
        assert time.monotonic() < deadline, [json.loads(r.body).get("type") for r in tenant.received]
        _run_billing_jobs(settings.redis_url)
        time.sleep(0.1)

    events = [Webhook(secret).verify(r.body, r.headers) for r in tenant.received]
    active = next(e for e in events if e["type"] == "subscription.active")
    assert active["customer_external_id"] == "tenant-user-7"
    assert active["plan"] == "pro-monthly" and active["status"] == "active"
    assert active["data"]["id"]
    ids = [r.headers["webhook-id"] for r in tenant.received]
    assert len(ids) == len(set(ids))  # each delivered once
