"""What the owner's billing page shows of a workspace's connections. Never a token or a secret."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.catalog.model import Plan
from provisioning.config import PolarEnvironment, Settings
from provisioning.connect import repository as connects
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs import repository as runs
from provisioning.webhooks import repository as webhooks
from provisioning.webhooks.urls import webhook_url


def webhook_summary(session: Session, integration_id: str) -> dict[str, Any]:
    """How many webhook events Polar delivered, the latest one's type and time, and how many the
    billing state could not take: failing (retrying or given up) and flagged (another organization's)."""
    last = webhooks.latest_event(session, integration_id)
    counts = webhooks.status_counts(session, integration_id)
    return {
        "received": sum(counts.values()),
        "failing": webhooks.failing_count(session, integration_id),
        "flagged": counts.get("flagged", 0),
        "last_type": last.event_type if last else None,
        "last_received_at": last.received_at.isoformat() if last else None,
    }


def status_snapshot(
    session: Session,
    workspace_id: str,
    *,
    environment: str | None = None,
    catalog: Catalog | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """One connection of the workspace (``environment``, default its first) as its page shows it."""
    integration = integrations.for_workspace(session, workspace_id, environment)
    served = settings is None or settings.serves(
        environment or (integration.environment if integration else "")
    )
    if integration is None:
        return {
            "environment": environment,
            "served": served,
            "status": IntegrationStatus.NOT_CONNECTED,
            "organization": None,
            "steps": [],
            "products": [],
            "webhook_endpoint_id": None,
            "webhooks": {
                "received": 0,
                "failing": 0,
                "flagged": 0,
                "last_type": None,
                "last_received_at": None,
            },
            "last_error": None,
            "run": None,
            "provisioned_at": None,
            "catalog_revision": None,
            "history": None,
            "account": None,
            "previous_organization": None,
            "health": None,
        }
    return _snapshot(session, integration, catalog, served, settings)


def _snapshot(
    session: Session,
    integration: PolarIntegration,
    catalog: Catalog | None,
    served: bool,
    settings: Settings | None = None,
) -> dict[str, Any]:
    names = {p.id: p.name for p in catalog.plans} if catalog else {}
    plans = {p.id: p for p in catalog.plans} if catalog else {}
    # After a disconnect the last run (cancelled, or long over) is history, not a step list to show.
    connected = integration.status != IntegrationStatus.NOT_CONNECTED
    run = runs.latest(session, integration.id) if connected else None
    organization = None
    if integration.polar_org_id:
        organization = {
            "id": integration.polar_org_id,
            "name": integration.polar_org_name,
            "slug": integration.polar_org_slug,
        }
    return {
        "environment": integration.environment,
        "served": served,
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
                **_plan_terms(plans.get(m.plan_id), catalog),
            }
            for m in integration.product_mappings
        ],
        "webhook_endpoint_id": integration.webhook_endpoint_id,
        "webhook_url": (
            webhook_url(settings, integration)
            if settings is not None and integration.webhook_endpoint_id and connected
            else None
        ),
        "organization_url": (
            f"{settings.polar(integration.environment).web_url}/dashboard/{integration.polar_org_slug}"
            if settings is not None and served and integration.polar_org_slug
            else None
        ),
        "webhooks": webhook_summary(session, integration.id),
        "last_error": integration.last_error,
        "run": {"id": run.id, "status": run.status, "error": run.error} if run else None,
        "provisioned_at": integration.provisioned_at.isoformat() if integration.provisioned_at else None,
        "catalog_revision": integration.catalog_revision,
        "history": _history(integration) if not connected else None,
        "health": _health(integration) if connected else None,
        "account": _account(session, integration),
        "previous_organization": _previous_organization(session, integration, names),
    }


INTERVALS = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}


def _money(cents: Any, currency: str) -> str:
    amount = Decimal(str(cents)) / 100
    text = f"{amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount:,.4f}".rstrip("0")
    return f"${text}" if currency.lower() == "usd" else f"{text} {currency.upper()}"


def _plan_terms(plan: Plan | None, catalog: Catalog | None) -> dict[str, Any]:
    """A plan's prices and billing interval in words, from the plan catalog."""
    if plan is None:
        return {"prices": [], "billing": None}
    meters = {m.id: m.name for m in catalog.meters} if catalog else {}
    prices = []
    for price in plan.prices:
        if price.type == "fixed":
            prices.append("Free" if not price.amount else _money(price.amount, price.currency))
        else:
            meter = meters.get(price.meter or "", price.meter or "usage")
            text = f"{_money(price.unit_amount or 0, price.currency)} per unit of {meter}"
            if price.cap_amount:
                text += f", at most {_money(price.cap_amount, price.currency)}"
            prices.append(text)
    if plan.interval is None:
        billing = "once"
    elif plan.interval_count == 1:
        billing = INTERVALS.get(plan.interval, f"every {plan.interval}")
    else:
        billing = f"every {plan.interval_count} {plan.interval}s"
    return {"prices": prices, "billing": billing}


def _account(session: Session, integration: PolarIntegration) -> dict[str, Any] | None:
    """The Polar account the connection's grant belongs to (its e-mail, when Polar told us)."""
    if not integration.polar_user_id:
        return None
    attempt = connects.completed_for(session, integration.workspace_id, integration.environment)
    return {"id": integration.polar_user_id, "email": attempt.account_email if attempt else None}


def _previous_organization(
    session: Session, integration: PolarIntegration, names: dict[str, str]
) -> dict[str, Any] | None:
    """The organization the connection switched away from, with the products we created there
    (they stay at Polar)."""
    switch = connects.latest_switch(session, integration.id)
    if switch is None or not switch.from_organization:
        return None
    if switch.from_organization.get("id") == integration.polar_org_id:
        return None  # switched back
    return {
        "organization": switch.from_organization,
        "account_email": switch.from_account_email,
        "switched_at": switch.switched_at.isoformat(),
        "endpoint_removed": switch.cleanup == "done",
        "products": [
            {
                "plan_id": p.get("plan_id"),
                "name": names.get(p.get("plan_id", ""), p.get("plan_id")),
                "polar_product_id": p.get("polar_product_id"),
            }
            for p in switch.products or []
        ],
    }


def _history(integration: PolarIntegration) -> dict[str, Any]:
    """A disconnected connection, as history: when, and the organization it was connected to (its
    products stay there at Polar)."""
    return {
        "disconnected_at": integration.updated_at.isoformat() if integration.updated_at else None,
        "provisioned_at": integration.provisioned_at.isoformat() if integration.provisioned_at else None,
    }


def environments_overview(
    session: Session, settings: Settings, workspace_id: str, *, catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """One snapshot per mode the page shows: every environment the deployment serves (test mode
    first), then any connection to an environment it no longer serves (shown, left alone)."""
    existing = {i.environment: i for i in integrations.all_for_workspace(session, workspace_id)}
    order = [e for e in PolarEnvironment if e in settings.polar_environments or e in existing]
    out = []
    for environment in order:
        integration = existing.get(environment)
        served = settings.serves(environment)
        if integration is None:
            snapshot = status_snapshot(session, workspace_id, environment=environment, settings=settings)
        else:
            snapshot = _snapshot(session, integration, catalog, served, settings)
        snapshot["mode"] = environment.mode
        snapshot["configured"] = served and settings.polar(environment).configured
        out.append(snapshot)
    return out


def _health(integration: PolarIntegration) -> dict[str, Any] | None:
    """The last health check, in words: when, whether all was well, what was found and done."""
    if integration.health_checked_at is None:
        return None
    found = integration.health or {}
    return {
        "checked_at": integration.health_checked_at.isoformat(),
        "ok": bool(integration.health_ok),
        "endpoint": found.get("endpoint"),
        "problems": list(found.get("problems") or []),
        "actions": list(found.get("actions") or []),
    }
