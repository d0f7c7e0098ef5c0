"""Creating provisioning runs and reading a workspace's status for its billing page (no secrets)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import get_integration
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus
from provisioning.webhooks.models import PolarWebhookEvent

STEP_NAMES = (
    "resolve_organization",
    "ensure_meters",
    "ensure_benefits",
    "ensure_products",
    "ensure_webhook_endpoint",
    "save_mappings",
)


def create_run(
    session: Session, integration: PolarIntegration, *, trigger: str, user_id: str | None = None
) -> ProvisioningRun:
    """A queued run with its steps pending. Enqueue it after commit (``queue.enqueue_after_commit``)."""
    if integration.id is None:
        session.flush()
    run = ProvisioningRun(
        integration_id=integration.id,
        status=RunStatus.QUEUED.value,
        trigger=trigger,
        requested_by_user_id=user_id,
        attempts=0,
        api_calls={},
    )
    run.steps = [
        ProvisioningStep(name=name, position=i, status=StepStatus.PENDING.value, polar_ids=[])
        for i, name in enumerate(STEP_NAMES)
    ]
    session.add(run)
    session.flush()
    return run


def latest_run(session: Session, integration_id: str) -> ProvisioningRun | None:
    return session.scalars(
        select(ProvisioningRun)
        .where(ProvisioningRun.integration_id == integration_id)
        .order_by(ProvisioningRun.created_at.desc(), ProvisioningRun.id.desc())
        .limit(1)
    ).first()


def webhook_summary(session: Session, integration_id: str) -> dict[str, Any]:
    """How many webhook events Polar delivered, and the latest one's type and time."""
    received = session.scalar(
        select(func.count())
        .select_from(PolarWebhookEvent)
        .where(PolarWebhookEvent.integration_id == integration_id)
    )
    last = session.execute(
        select(PolarWebhookEvent.event_type, PolarWebhookEvent.received_at)
        .where(PolarWebhookEvent.integration_id == integration_id)
        .order_by(PolarWebhookEvent.received_at.desc())
        .limit(1)
    ).first()
    return {
        "received": received or 0,
        "last_type": last.event_type if last else None,
        "last_received_at": last.received_at.isoformat() if last else None,
    }


def status_snapshot(session: Session, workspace_id: str, *, catalog: Catalog | None = None) -> dict[str, Any]:
    """What the owner's billing page shows. Never contains a token or a webhook secret."""
    integration = get_integration(session, workspace_id)
    if integration is None:
        return {
            "status": IntegrationStatus.NOT_CONNECTED.value,
            "organization": None,
            "steps": [],
            "products": [],
            "webhook_endpoint_id": None,
            "webhooks": {"received": 0, "last_type": None, "last_received_at": None},
            "last_error": None,
            "run": None,
            "provisioned_at": None,
            "catalog_revision": None,
        }
    names = {p.id: p.name for p in catalog.plans} if catalog else {}
    # After a disconnect the last run (cancelled, or long over) is history, not a step list to show.
    connected = integration.status != IntegrationStatus.NOT_CONNECTED.value
    run = latest_run(session, integration.id) if connected else None
    organization = None
    if integration.polar_org_id:
        organization = {
            "id": integration.polar_org_id,
            "name": integration.polar_org_name,
            "slug": integration.polar_org_slug,
        }
    return {
        "status": integration.status,
        "organization": organization,
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "duration_ms": s.duration_ms,
                "polar_ids": list(s.polar_ids or []),
                "error": s.error,
            }
            for s in (run.steps if run else [])
        ],
        "products": [
            {
                "plan_id": m.plan_id,
                "polar_product_id": m.polar_product_id,
                "name": names.get(m.plan_id, m.plan_id),
            }
            for m in integration.product_mappings
        ],
        "webhook_endpoint_id": integration.webhook_endpoint_id,
        "webhooks": webhook_summary(session, integration.id),
        "last_error": integration.last_error,
        "run": {"id": run.id, "status": run.status, "error": run.error} if run else None,
        "provisioned_at": integration.provisioned_at.isoformat() if integration.provisioned_at else None,
        "catalog_revision": integration.catalog_revision,
    }
