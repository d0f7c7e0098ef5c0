"""Desired state: the Polar request bodies a catalog asks for, and identity in Polar ``metadata``.

Polar has no idempotency keys, so our identity lives in each object's own metadata (keys <= 40
chars): the plan/benefit/meter id and the workspace id. ``connect_polar_revision`` records the
catalog revision that last wrote the object; it is informative and ignored when comparing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from provisioning.catalog.model import Benefit, Meter, Plan, Price

PLAN_KEY = "connect_polar_plan"
BENEFIT_KEY = "connect_polar_benefit"
METER_KEY = "connect_polar_meter"
WORKSPACE_KEY = "connect_polar_workspace"
REVISION_KEY = "connect_polar_revision"
INFORMATIVE_KEYS = frozenset({REVISION_KEY})


def identity(kind_key: str, ident: str, workspace_id: str, revision: str) -> dict[str, str]:
    return {kind_key: ident, WORKSPACE_KEY: workspace_id, REVISION_KEY: revision}


def catalog_benefit_id(metadata: object) -> str | None:
    """The catalog's benefit id a Polar benefit's metadata carries (None: not one of ours)."""
    value = metadata.get(BENEFIT_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def comparable_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if k not in INFORMATIVE_KEYS}


def meter_body(meter: Meter, *, workspace_id: str, revision: str, organization_id: str) -> dict[str, Any]:
    return {
        "name": meter.name,
        "filter": meter_filter(meter),
        "aggregation": meter_aggregation(meter),
        "metadata": identity(METER_KEY, meter.id, workspace_id, revision),
        "organization_id": organization_id,
    }


def meter_filter(meter: Meter) -> dict[str, Any]:
    return {
        "conjunction": "and",
        "clauses": [{"property": "name", "operator": "eq", "value": meter.event_name}],
    }


def meter_aggregation(meter: Meter) -> dict[str, Any]:
    if meter.aggregation == "count":
        return {"func": "count"}
    return {"func": meter.aggregation, "property": meter.property}


def benefit_properties(benefit: Benefit, meter_ids: dict[str, str]) -> dict[str, Any]:
    if benefit.type == "custom":
        return {"note": benefit.note}
    if benefit.type == "meter_credit":
        assert benefit.meter is not None
        return {"units": benefit.units, "rollover": benefit.rollover, "meter_id": meter_ids[benefit.meter]}
    return {}


def benefit_body(
    benefit: Benefit, meter_ids: dict[str, str], *, workspace_id: str, revision: str, organization_id: str
) -> dict[str, Any]:
    return {
        "type": benefit.type,
        "description": benefit.description,
        "properties": benefit_properties(benefit, meter_ids),
        "metadata": identity(BENEFIT_KEY, benefit.id, workspace_id, revision),
        "organization_id": organization_id,
    }


def price_body(price: Price, meter_ids: dict[str, str]) -> dict[str, Any]:
    if price.type == "fixed":
        return {"amount_type": "fixed", "price_amount": price.amount, "price_currency": price.currency}
    assert price.meter is not None and price.unit_amount is not None
    body: dict[str, Any] = {
        "amount_type": "metered_unit",
        "meter_id": meter_ids[price.meter],
        "unit_amount": str(price.unit_amount),
        "price_currency": price.currency,
    }
    if price.cap_amount is not None:
        body["cap_amount"] = price.cap_amount
    return body


def price_key(body: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two prices the same, for a request body or a Polar price (as a dict)."""
    if body.get("amount_type") == "fixed":
        return ("fixed", body.get("price_currency", "usd"), int(body.get("price_amount") or 0))
    if body.get("amount_type") == "metered_unit":
        unit = Decimal(str(body.get("unit_amount"))).normalize()
        return (
            "metered_unit",
            body.get("price_currency", "usd"),
            body.get("meter_id"),
            str(unit),
            body.get("cap_amount"),
        )
    return (body.get("amount_type"), body.get("id"))


def product_body(
    plan: Plan, meter_ids: dict[str, str], *, workspace_id: str, revision: str, organization_id: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": plan.name,
        "description": plan.description,
        "prices": [price_body(p, meter_ids) for p in plan.prices],
        "metadata": identity(PLAN_KEY, plan.id, workspace_id, revision),
        "organization_id": organization_id,
    }
    if plan.interval is not None:
        body["recurring_interval"] = plan.interval
        body["recurring_interval_count"] = plan.interval_count
    return body
