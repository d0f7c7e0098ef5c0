"""Ensure one product per plan, found by ``connect_polar_plan`` metadata before anything is created.

Products are archived, never deleted. A billing interval can't change at Polar, so a plan whose
interval changed gets a new product and the old one is archived; plans no longer in the catalog
have their products archived. Benefits are attached only when the set differs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from provisioning.catalog.desired import PLAN_KEY, price_key, product_body
from provisioning.catalog.model import Plan
from provisioning.reconcile.compare import active_prices, product_differences, product_view
from provisioning.reconcile.context import Change, RunContext, as_plain
from provisioning.reconcile.resource import (
    Ensured,
    Resource,
    ensure_keyed,
    fields_with_metadata,
    metadata_differs,
    tag,
)

SCOPE_READ, SCOPE_WRITE = "products:read", "products:write"
PRODUCTS = Resource("product", "products", "products", SCOPE_READ, SCOPE_WRITE)

ProductResult = Ensured  # ids: plan id -> Polar product id


def fetch(ctx: RunContext) -> list[Any]:
    return PRODUCTS.fetch(ctx)


def _interval(p: Any) -> tuple[str | None, int]:
    interval = as_plain(p.recurring_interval)
    return (str(interval) if interval else None, int(p.recurring_interval_count or 1) if interval else 1)


def _desired_interval(plan: Plan) -> tuple[str | None, int]:
    return (plan.interval, plan.interval_count if plan.interval else 1)


def _price_update(actual: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full price list to send: each desired price an existing one already is, by its id."""
    unused = list(actual)
    out: list[dict[str, Any]] = []
    for body in desired:
        match = next((p for p in unused if price_key(p) == price_key(body)), None)
        if match is not None:
            unused.remove(match)
            out.append({"id": match["id"]})
        else:
            out.append(body)
    return out


def plan(
    ctx: RunContext, actual: list[Any], meter_ids: dict[str, str], benefit_ids: dict[str, str]
) -> tuple[dict[str, str], list[Change]]:
    ids: dict[str, str] = {}
    changes: list[Change] = []
    mids = {m.id: meter_ids.get(m.id, f"<new meter {m.id}>") for m in ctx.catalog.meters}
    by_plan: dict[str, list[Any]] = {}
    for product in actual:
        by_plan.setdefault(str(tag(product, PLAN_KEY)), []).append(product)

    for plan_ in ctx.catalog.plans:
        body = product_body(
            plan_,
            mids,
            workspace_id=ctx.workspace_id,
            revision=ctx.revision,
            organization_id=ctx.organization_id,
        )
        wanted_benefits = [benefit_ids.get(b, f"<new benefit {b}>") for b in plan_.benefits]
        candidates = sorted(by_plan.get(plan_.id, []), key=lambda p: p.created_at)
        same = [p for p in candidates if _interval(p) == _desired_interval(plan_)]
        active_same = [p for p in same if not p.is_archived]
        current = active_same[0] if active_same else (same[-1] if same else None)

        for other in candidates:
            if other is current or other.is_archived:
                continue
            reason = "duplicate" if other in active_same else "billing interval changed"
            changes.append(
                Change(
                    "archive",
                    "product",
                    plan_.id,
                    f"archive product {other.id} of plan '{plan_.id}' ({reason})",
                    other.id,
                    {"is_archived": True},
                )
            )
        if current is None:
            create_body = dict(body)
            create_body["__benefits"] = wanted_benefits
            changes.append(PRODUCTS.create_change(plan_.id, plan_.name, create_body))
            continue

        ids[plan_.id] = current.id
        view = product_view(current)
        # The same comparison drift makes of a product Polar sent (its interval always matches here).
        differs = {d.field for d in product_differences(view, body)}
        update: dict[str, Any] = {}
        if "name" in differs:
            update["name"] = plan_.name
        if "description" in differs:
            update["description"] = plan_.description
        if "prices" in differs:
            update["prices"] = _price_update(active_prices(view), body["prices"])
        if metadata_differs(current, body):
            update["metadata"] = body["metadata"]
        if "is_archived" in differs:
            update["is_archived"] = False
        if update:
            fields = fields_with_metadata(update, body["metadata"])
            changes.append(PRODUCTS.update_change(plan_.id, current.id, update, fields))
        if {b.id for b in current.benefits} != set(wanted_benefits):
            changes.append(
                Change(
                    "attach_benefits",
                    "product",
                    plan_.id,
                    f"set benefits of product '{plan_.id}' to {', '.join(plan_.benefits) or 'none'}",
                    current.id,
                    {"benefits": wanted_benefits},
                )
            )

    known = {p.id for p in ctx.catalog.plans}
    for plan_id, products in by_plan.items():
        if plan_id in known:
            continue
        for product in products:
            if not product.is_archived:
                changes.append(
                    Change(
                        "archive",
                        "product",
                        plan_id,
                        f"archive product {product.id} of plan '{plan_id}' (no longer in the catalog)",
                        product.id,
                        {"is_archived": True},
                    )
                )
    return ids, changes


def ensure(
    ctx: RunContext, meter_ids: dict[str, str], benefit_ids: dict[str, str], actual: list[Any] | None = None
) -> ProductResult:
    return ensure_keyed(
        ctx, PRODUCTS, actual, lambda a: plan(ctx, a, meter_ids, benefit_ids), fetch=fetch, writer=_writer
    )


def _writer(ctx: RunContext, change: Change) -> Any:
    if change.action == "create":
        create = PRODUCTS.writer(
            ctx, replace(change, body={k: v for k, v in change.body.items() if k != "__benefits"})
        )
        benefits = change.body.get("__benefits") or []

        def create_and_attach() -> Any:
            product = create()
            if benefits:
                # Setting the full benefit set is idempotent, so it is retried inline.
                product = _attach_benefits(ctx, product.id, change.key, benefits)
            return product

        return create_and_attach
    if change.action == "attach_benefits":
        return lambda: _attach_benefits(ctx, change.polar_id, change.key, change.body["benefits"])
    return PRODUCTS.writer(ctx, change)  # update or archive


def _attach_benefits(ctx: RunContext, product_id: str | None, key: str, benefits: list[str]) -> Any:
    return ctx.api.write(
        ctx.api.sdk.products.update_benefits,
        product_id,
        action=f"attach benefits to the product '{key}'",
        scope=SCOPE_WRITE,
        benefits=benefits,
    )
