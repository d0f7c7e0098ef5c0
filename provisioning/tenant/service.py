"""The plans as provisioned for a connection, and its deploy variables. Read-only.

The plans are those of the catalog revision the connection was last provisioned with (a rollout
under way does not show plans Polar does not have yet), each with the Polar product id of the
connection's mapping (``None`` until provisioned).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.catalog import repository as catalogs
from provisioning.catalog.model import Benefit, Meter, Plan, Price
from provisioning.config import PolarEnvironment, Settings
from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration

# A connection provisioned before keeps answering with what it was last provisioned with while a
# run updates it (a rollout, a re-provision) or after one failed: its products still exist at Polar.
SERVES_LAST_PROVISIONED = frozenset({IntegrationStatus.PROVISIONING, IntegrationStatus.FAILED})
# Parsed stored revisions (a revision's text never changes), so a call does not parse TOML.
_REVISIONS: dict[str, Catalog] = {}
_REVISIONS_KEPT = 32
# A value written bare in a .env line; anything else is double-quoted.
_BARE = re.compile(r"[A-Za-z0-9_./:@+-]*")


class NotReady(ConnectPolarError):
    """The connection a key reads cannot answer yet; the message says what to do."""


def _mode(environment: str) -> str:
    return "test mode" if environment == PolarEnvironment.SANDBOX else "live mode"


def ready_connection(
    session: Session, settings: Settings, workspace_id: str, environment: PolarEnvironment
) -> PolarIntegration:
    """The workspace's ready connection to ``environment``, or :class:`NotReady` saying why not."""
    integration = integrations.for_workspace(session, workspace_id, environment)
    return ready(session, settings, integration, environment)


def ready(
    session: Session, settings: Settings, integration: PolarIntegration | None, environment: PolarEnvironment
) -> PolarIntegration:
    """``integration`` (a workspace's connection to ``environment``, None without one) if it is
    ready, or :class:`NotReady` saying why not."""
    mode = _mode(environment)
    if integration is None or integration.status == IntegrationStatus.NOT_CONNECTED:
        raise NotReady(
            f"This workspace has no {mode} Polar connection. Its owner connects Polar in {mode} on "
            "the workspace's billing page; this key answers once billing is set up."
        )
    if not settings.serves(environment):
        raise NotReady(f"This platform no longer serves Polar's {environment} environment ({mode}).")
    messages = {
        IntegrationStatus.CONNECTING: f"Polar is being connected in {mode}: try again in a minute.",
        IntegrationStatus.PROVISIONING: (
            f"Billing is being {'updated' if integration.provisioned_at else 'set up'} in Polar for "
            f"{mode}: try again in a minute."
        ),
        IntegrationStatus.AWAITING_ORGANIZATION: (
            f"The workspace's owner has to choose a Polar organization for {mode} on the billing page."
        ),
        IntegrationStatus.FAILED: (
            f"Setting up billing in {mode} failed. The workspace's owner reconnects Polar on the "
            "billing page to try again."
        ),
        IntegrationStatus.NEEDS_RECONNECT: (
            f"Polar no longer accepts the {mode} connection. The workspace's owner reconnects Polar on "
            "the billing page."
        ),
    }
    if integration.status == IntegrationStatus.READY:
        return integration
    provisioned = integration.provisioned_at is not None
    if (
        integration.status in SERVES_LAST_PROVISIONED
        and provisioned
        and integrations.mappings(session, integration.id)
    ):
        return integration  # its products as last provisioned, while a run updates it or after one failed
    raise NotReady(messages.get(integration.status, f"The {mode} connection is not ready."))


def provisioned_catalog(session: Session, integration: PolarIntegration, running: Catalog) -> Catalog:
    """The catalog revision the connection was provisioned with (the running one when it is that,
    or when the revision is not stored here)."""
    revision = integration.catalog_revision
    if not revision or revision == running.revision:
        return running
    cached = _REVISIONS.get(revision)
    if cached is None:
        cached = catalogs.load_revision(session, revision)
        if cached is None:
            return running
        if len(_REVISIONS) >= _REVISIONS_KEPT:
            _REVISIONS.pop(next(iter(_REVISIONS)))
        _REVISIONS[revision] = cached
    return cached


def _product_ids(session: Session, integration: PolarIntegration) -> dict[str, str]:
    return {m.plan_id: m.polar_product_id for m in integrations.mappings(session, integration.id)}


def _meter(meter: Meter | None, meter_id: str) -> dict[str, Any]:
    if meter is None:
        return {"id": meter_id, "name": meter_id, "event_name": None, "aggregation": None, "property": None}
    return {
        "id": meter.id,
        "name": meter.name,
        "event_name": meter.event_name,
        "aggregation": meter.aggregation,
        "property": meter.property,
    }


def _price(price: Price, meters: dict[str, Meter]) -> dict[str, Any]:
    if price.type == "fixed":
        return {"type": "fixed", "currency": price.currency, "amount": price.amount or 0}
    meter_id = price.meter or ""
    return {
        "type": "metered_unit",
        "currency": price.currency,
        # A decimal string of cents, never in exponent notation: "0.05", "50".
        "unit_amount": format((price.unit_amount or Decimal(0)).normalize(), "f"),
        "cap_amount": price.cap_amount,
        "meter": _meter(meters.get(meter_id), meter_id),
    }


def _benefit(benefit: Benefit) -> dict[str, Any]:
    out: dict[str, Any] = {"id": benefit.id, "type": benefit.type, "description": benefit.description}
    if benefit.type == "custom":
        out["note"] = benefit.note
    elif benefit.type == "meter_credit":
        out |= {"meter": benefit.meter, "units": benefit.units, "rollover": benefit.rollover}
    return out


def _plan(plan: Plan, catalog: Catalog, product_id: str | None) -> dict[str, Any]:
    meters = {m.id: m for m in catalog.meters}
    benefits = {b.id: b for b in catalog.benefits}
    return {
        "id": plan.id,
        "name": plan.name,
        "description": plan.description,
        "interval": plan.interval,
        "interval_count": plan.interval_count,
        "polar_product_id": product_id,
        "prices": [_price(p, meters) for p in plan.prices],
        "benefits": [_benefit(benefits[b]) for b in plan.benefits if b in benefits],
    }


def plans(session: Session, integration: PolarIntegration, running: Catalog) -> dict[str, Any]:
    """The connection's plans as the tenant API answers them (JSON-ready)."""
    catalog = provisioned_catalog(session, integration, running)
    products = _product_ids(session, integration)
    return {
        "mode": "test" if integration.environment == PolarEnvironment.SANDBOX else "live",
        "environment": str(integration.environment),
        "organization_id": integration.polar_org_id,
        "catalog_revision": catalog.revision,
        "plans": [_plan(p, catalog, products.get(p.id)) for p in catalog.plans],
    }


@dataclass(frozen=True)
class DeployEnv:
    variables: dict[str, str | None]  # in the order of the .env block
    dotenv: str


def _dotenv_value(value: str | None) -> str:
    if value is None:
        return ""
    if _BARE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def deploy_env(session: Session, integration: PolarIntegration, running: Catalog) -> DeployEnv:
    """``POLAR_SERVER``, ``POLAR_ORGANIZATION_ID`` and one ``POLAR_PRODUCT_<PLAN>`` per plan (empty
    where the plan has no product yet), as variables and as a ``.env`` block."""
    catalog = provisioned_catalog(session, integration, running)
    products = _product_ids(session, integration)
    variables: dict[str, str | None] = {
        "POLAR_SERVER": str(integration.environment),
        "POLAR_ORGANIZATION_ID": integration.polar_org_id,
    }
    for plan in catalog.plans:
        variables[plan.env_name] = products.get(plan.id)
    dotenv = "".join(f"{name}={_dotenv_value(value)}\n" for name, value in variables.items())
    return DeployEnv(variables, dotenv)
