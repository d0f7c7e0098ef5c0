"""Ensure the catalog's benefits exist, found by ``connect_polar_benefit`` metadata (and type)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.catalog.desired import BENEFIT_KEY, WORKSPACE_KEY, benefit_body, comparable_metadata
from provisioning.reconcile.context import MAX_ROUNDS, Change, RunContext, as_plain, gave_up, still_ambiguous

SCOPE_READ, SCOPE_WRITE = "benefits:read", "benefits:write"


@dataclass
class BenefitResult:
    ids: dict[str, str]  # catalog benefit id -> Polar benefit id
    changes: list[Change]
    polar_ids: list[dict[str, str]]


def fetch(ctx: RunContext) -> list[Any]:
    if not ctx.catalog.benefits:
        return []
    return ctx.api.list_all(
        ctx.api.sdk.benefits.list,
        action="list benefits",
        scope=SCOPE_READ,
        organization_id=ctx.organization_id,
        metadata={WORKSPACE_KEY: ctx.workspace_id},
    )


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
            if (b.metadata or {}).get(BENEFIT_KEY) == benefit.id
            and b.type == benefit.type
            and not getattr(b, "is_deleted", False)
        ]
        found.sort(key=lambda b: b.created_at)
        if not found:
            changes.append(
                Change(
                    "create",
                    "benefit",
                    benefit.id,
                    f"create benefit '{benefit.id}' ({benefit.description})",
                    body=body,
                )
            )
            continue
        current = found[0]
        ids[benefit.id] = current.id
        update: dict[str, Any] = {}
        if current.description != benefit.description:
            update["description"] = benefit.description
        props = as_plain(current.properties) or {}
        if any(props.get(k) != v for k, v in body["properties"].items()):
            update["properties"] = body["properties"]
        if comparable_metadata(current.metadata) != comparable_metadata(body["metadata"]):
            update["metadata"] = body["metadata"]
        if update:
            fields = ", ".join(sorted(update))
            update["type"] = benefit.type
            update.setdefault("metadata", body["metadata"])
            changes.append(
                Change(
                    "update",
                    "benefit",
                    benefit.id,
                    f"update benefit '{benefit.id}': {fields}",
                    current.id,
                    update,
                )
            )
    return ids, changes


def ensure(ctx: RunContext, meter_ids: dict[str, str], actual: list[Any] | None = None) -> BenefitResult:
    actual = fetch(ctx) if actual is None else actual
    all_changes: list[Change] = []
    polar_ids: list[dict[str, str]] = []
    for _ in range(MAX_ROUNDS):
        ids, changes = plan(ctx, actual, meter_ids)
        if not changes:
            break
        results = ctx.parallel([_writer(ctx, c) for c in changes])
        for change, result in zip(changes, results, strict=True):
            if isinstance(result, BaseException):
                continue
            ids[change.key] = result.id
            all_changes.append(change)
            polar_ids.append({"kind": "benefit", "id": result.id, "action": change.action + "d"})
        if not still_ambiguous(results):
            break
        actual = fetch(ctx)
    else:
        raise gave_up("benefits")
    touched = {p["id"] for p in polar_ids}
    polar_ids += [{"kind": "benefit", "id": i, "action": "found"} for i in ids.values() if i not in touched]
    return BenefitResult(ids=ids, changes=all_changes, polar_ids=polar_ids)


def _writer(ctx: RunContext, change: Change) -> Any:
    api = ctx.api
    if change.action == "create":
        return lambda: api.create(
            api.sdk.benefits.create,
            action=f"create the benefit '{change.key}'",
            scope=SCOPE_WRITE,
            **change.body,
        )
    return lambda: api.write(
        api.sdk.benefits.update,
        change.polar_id,
        action=f"update the benefit '{change.key}'",
        scope=SCOPE_WRITE,
        **change.body,
    )
