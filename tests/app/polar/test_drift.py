"""The billing page shows the connection's drift: what was changed at Polar away from the plans,
in words; once a run puts the catalog back, it is gone."""

from __future__ import annotations

import json
from typing import Any

import httpx
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.billing.processing import version_of
from provisioning.catalog import load_catalog
from provisioning.config import Settings
from provisioning.drift import service as drift
from provisioning.drift.models import Observation
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token
from tests.app.polar.conftest import run_jobs

RENAMED = "Pro (monthly) was renamed at Polar to “Pro+”; the catalog says “Pro (monthly)”"


def integration_of(session: Session, workspace_id: str) -> PolarIntegration:
    session.expire_all()
    found = session.scalar(sa.select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id))
    assert found is not None
    return found


def rename_at_polar(session: Session, settings: Settings, control: httpx.Client, workspace_id: str) -> None:
    """The owner renames Pro (monthly) in Polar's dashboard; Polar's product.updated event is
    processed (``observe``, as event processing calls it) and committed."""
    integration = integration_of(session, workspace_id)
    product_id = next(m.polar_product_id for m in integration.product_mappings if m.plan_id == "pro-monthly")
    headers = {"Authorization": f"Bearer {access_token(settings, integration)}"}
    control.patch(f"/v1/products/{product_id}", json={"name": "Pro+"}, headers=headers).raise_for_status()
    events = control.get(
        "/_emulator/webhook-events",
        params={"type": "product.updated", "endpoint_id": integration.webhook_endpoint_id},
    ).json()
    data: dict[str, Any] = [json.loads(e["payload"])["data"] for e in events][-1]
    assert data["id"] == product_id and data["name"] == "Pro+"
    seen = drift.observe(
        session,
        settings,
        integration,
        "product.updated",
        data,
        load_catalog(settings.plans_file),
        version_of(data),
    )
    assert seen == Observation.COMPARED
    session.commit()


def test_the_owner_sees_drift_until_a_run_puts_the_catalog_back(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings, control: httpx.Client
) -> None:
    page = f"/workspaces/{ready.id}/polar"
    assert 'id="drift"' not in owner_client.get(page).get_data(as_text=True)

    rename_at_polar(session, settings, control, ready.id)

    html = owner_client.get(page).get_data(as_text=True)
    assert 'id="drift"' in html and "Changed at Polar" in html
    assert RENAMED in html
    assert "Billing setup puts your plans' version back at Polar" in html  # the default policy, restore

    run_jobs(settings.redis_url, settings)  # the restore run the drift started

    html = owner_client.get(page).get_data(as_text=True)
    assert 'id="drift"' not in html and "Pro+" not in html
