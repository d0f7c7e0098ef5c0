"""Ensure the catalog's benefits exist, found by ``connect_polar_benefit`` metadata (and type)."""

from __future__ import annotations

from typing import Any

from provisioning.catalog.desired import BENEFIT_KEY, benefit_body
from provisioning.reconcile.compare import benefit_differences, benefit_view
from provisioning.reconcile.context import Change, RunContext
from provisioning.reconcile.resource import Ensured, Resource, ensure_keyed, metadata_differs, tag

SCOPE_READ, SCOPE_WRITE = "benefits:read", "benefits:write"
BENEFITS = Resource("benefit", "benefits", "benefits", SCOPE_READ, SCOPE_WRITE)

BenefitResult = Ensured  # ids: catalog benefit id -> Polar benefit id


def fetch(ctx: RunContext) -> list[Any]:
    return BENEFITS.fetch(ctx) if ctx.catalog.benefits else []


def plan(
    ctx: RunContext, actual: list[Any], meter_ids: dict[str, str]
) -> tuple[dict[str, str], list[Change]]:
    ids: dict[str, str] = {}
    changes: list[Change] = []
    # In a dry run a meter may not exist yet: name it instead of its id.
    mids = {m.id: meter_ids.get(m.id, f"<new meter {m.id}>") for m in ctx.catalog.meters}
    for benefit in ctx.catalog.benefits:
        body = benefit_body(
            benefit,
            mids,
            workspace_id=ctx.workspace_id,
            revision=ctx.revision,
            organization_id=ctx.organization_id,
        )
        found = [
            b
            for b in actual
            if tag(b, BENEFIT_KEY) == benefit.id
            and b.type == benefit.type
            and not getattr(b, "is_deleted", False)
        ]
        found.sort(key=lambda b: b.created_at)
        if not found:
            changes.append(BENEFITS.create_change(benefit.id, benefit.description, body))
            continue
        current = found[0]
        ids[benefit.id] = current.id
        update: dict[str, Any] = {}
        # The same comparison drift makes of a benefit Polar sent.
        for difference in benefit_differences(benefit_view(current), body):
            update[difference.field] = difference.catalog
        if metadata_differs(current, body):
            update["metadata"] = body["metadata"]
        if update:
            # Benefits name every changed field, the metadata too; an update must repeat the type.
            fields = ", ".join(sorted(update))
            update["type"] = benefit.type
            update.setdefault("metadata", body["metadata"])
            changes.append(BENEFITS.update_change(benefit.id, current.id, update, fields))
    return ids, changes


def ensure(ctx: RunContext, meter_ids: dict[str, str], actual: list[Any] | None = None) -> BenefitResult:
    return ensure_keyed(ctx, BENEFITS, actual, lambda a: plan(ctx, a, meter_ids), fetch=fetch)
