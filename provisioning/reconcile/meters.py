"""Ensure the catalog's meters exist in the organization, found by ``connect_polar_meter`` metadata."""

from __future__ import annotations

from typing import Any

from provisioning.catalog.desired import METER_KEY, meter_aggregation, meter_body, meter_filter
from provisioning.reconcile.context import Change, RunContext, as_plain
from provisioning.reconcile.resource import (
    Ensured,
    Resource,
    ensure_keyed,
    fields_with_metadata,
    metadata_differs,
    tag,
)

SCOPE_READ, SCOPE_WRITE = "meters:read", "meters:write"
METERS = Resource("meter", "meters", "meters", SCOPE_READ, SCOPE_WRITE)

MeterResult = Ensured  # ids: catalog meter id -> Polar meter id


def fetch(ctx: RunContext) -> list[Any]:
    return METERS.fetch(ctx) if ctx.catalog.meters else []


def plan(ctx: RunContext, actual: list[Any]) -> tuple[dict[str, str], list[Change]]:
    ids: dict[str, str] = {}
    changes: list[Change] = []
    for meter in ctx.catalog.meters:
        found = [m for m in actual if tag(m, METER_KEY) == meter.id]
        found.sort(key=lambda m: (m.archived_at is not None, m.created_at))
        body = meter_body(
            meter, workspace_id=ctx.workspace_id, revision=ctx.revision, organization_id=ctx.organization_id
        )
        if not found:
            changes.append(METERS.create_change(meter.id, meter.name, body))
            continue
        current = found[0]
        ids[meter.id] = current.id
        update: dict[str, Any] = {}
        if current.name != meter.name:
            update["name"] = meter.name
        if as_plain(current.filter) != meter_filter(meter):
            update["filter"] = meter_filter(meter)
        if {k: v for k, v in as_plain(current.aggregation).items() if v is not None} != meter_aggregation(
            meter
        ):
            update["aggregation"] = meter_aggregation(meter)
        if metadata_differs(current, body):
            update["metadata"] = body["metadata"]
        if current.archived_at is not None:
            update["is_archived"] = False
        if update:
            fields = fields_with_metadata(update, body["metadata"])
            changes.append(METERS.update_change(meter.id, current.id, update, fields))
    return ids, changes


def ensure(ctx: RunContext, actual: list[Any] | None = None) -> MeterResult:
    return ensure_keyed(ctx, METERS, actual, lambda a: plan(ctx, a), fetch=fetch)
