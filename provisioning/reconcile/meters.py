"""Ensure the catalog's meters exist in the organization, found by ``connect_polar_meter`` metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.catalog.desired import (
    METER_KEY,
    WORKSPACE_KEY,
    comparable_metadata,
    meter_aggregation,
    meter_body,
    meter_filter,
)
from provisioning.reconcile.context import MAX_ROUNDS, Change, RunContext, as_plain, gave_up, still_ambiguous

SCOPE_READ, SCOPE_WRITE = "meters:read", "meters:write"


@dataclass
class MeterResult:
    ids: dict[str, str]  # catalog meter id -> Polar meter id
    changes: list[Change]
    polar_ids: list[dict[str, str]]


def fetch(ctx: RunContext) -> list[Any]:
    if not ctx.catalog.meters:
        return []
    return ctx.api.list_all(
        ctx.api.sdk.meters.list,
        action="list meters",
        scope=SCOPE_READ,
        organization_id=ctx.organization_id,
        metadata={WORKSPACE_KEY: ctx.workspace_id},
    )


def plan(ctx: RunContext, actual: list[Any]) -> tuple[dict[str, str], list[Change]]:
    ids: dict[str, str] = {}
    changes: list[Change] = []
    for meter in ctx.catalog.meters:
        found = [m for m in actual if (m.metadata or {}).get(METER_KEY) == meter.id]
        found.sort(key=lambda m: (m.archived_at is not None, m.created_at))
        body = meter_body(
            meter, workspace_id=ctx.workspace_id, revision=ctx.revision, organization_id=ctx.organization_id
        )
        if not found:
            changes.append(
                Change("create", "meter", meter.id, f"create meter '{meter.id}' ({meter.name})", body=body)
            )
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
        if comparable_metadata(current.metadata) != comparable_metadata(body["metadata"]):
            update["metadata"] = body["metadata"]
        if current.archived_at is not None:
            update["is_archived"] = False
        if update:
            if "metadata" not in update:
                update["metadata"] = body["metadata"]
            fields = ", ".join(sorted(k for k in update if k != "metadata") or ["metadata"])
            changes.append(
                Change(
                    "update", "meter", meter.id, f"update meter '{meter.id}': {fields}", current.id, update
                )
            )
    return ids, changes


def ensure(ctx: RunContext, actual: list[Any] | None = None) -> MeterResult:
    actual = fetch(ctx) if actual is None else actual
    all_changes: list[Change] = []
    polar_ids: list[dict[str, str]] = []
    for _ in range(MAX_ROUNDS):
        ids, changes = plan(ctx, actual)
        if not changes:
            break
        results = ctx.parallel([_writer(ctx, c) for c in changes])
        for change, result in zip(changes, results, strict=True):
            if isinstance(result, BaseException):
                continue
            ids[change.key] = result.id
            all_changes.append(change)
            polar_ids.append({"kind": "meter", "id": result.id, "action": change.action + "d"})
        if not still_ambiguous(results):
            break
        actual = fetch(ctx)
    else:
        raise gave_up("meters")
    touched = {p["id"] for p in polar_ids}
    polar_ids += [{"kind": "meter", "id": i, "action": "found"} for i in ids.values() if i not in touched]
    return MeterResult(ids=ids, changes=all_changes, polar_ids=polar_ids)


def _writer(ctx: RunContext, change: Change) -> Any:
    api = ctx.api
    if change.action == "create":
        return lambda: api.create(
            api.sdk.meters.create, action=f"create the meter '{change.key}'", scope=SCOPE_WRITE, **change.body
        )
    return lambda: api.write(
        api.sdk.meters.update,
        change.polar_id,
        action=f"update the meter '{change.key}'",
        scope=SCOPE_WRITE,
        **change.body,
    )
