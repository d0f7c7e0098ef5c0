"""Polar's benefit jobs: one ``benefit.grant`` / ``benefit.revoke`` job per benefit, each sending
its own ``benefit_grant.*`` event and triggering ``customer.state_changed`` (NOTES 10.6).

Meter credits: a granted ``meter_credit`` benefit credits its units on its meter; at each cycle
the meter is reset (consumption counts again from zero) and credited again.
"""

from __future__ import annotations

from typing import Any

from polar_emulator.domain import customer_meters
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.grants import (
    active_grants,
    benefit_of,
    grant_benefit,
    revoke_grant,
    serialize_grant_webhook,
)
from polar_emulator.domain.store import Store, now


def product_benefits(store: Store, product: dict[str, Any]) -> list[dict[str, Any]]:
    """The product's benefits, live where the benefits collection has them."""
    return [benefit_of(store, b["id"], b) for b in product.get("benefits", [])]


def grant_product_benefits(
    flow: Flow,
    customer: dict[str, Any],
    product: dict[str, Any],
    *,
    subscription_id: str | None,
    order_id: str | None,
) -> list[dict[str, Any]]:
    """Grant every benefit of ``product`` in this scope; ``benefit_grant.created`` for each new or
    re-granted one. Returns the grants that changed."""
    granted = []
    for benefit in product_benefits(flow.store, product):
        grant = grant_benefit(
            flow.store, customer, benefit, subscription_id=subscription_id, order_id=order_id
        )
        if grant is None:
            continue
        granted.append(grant)
        flow.emit("benefit_grant.created", serialize_grant_webhook(flow.store, grant))
        flow.state_changed(customer)
    if granted:
        customer_meters.refresh(flow.store, customer)
    return granted


def revoke_grants(flow: Flow, customer: dict[str, Any], grants: list[dict[str, Any]]) -> None:
    """Revoke ``grants``: ``benefit_grant.revoked`` for each."""
    for grant in grants:
        revoke_grant(flow.store, grant)
        flow.emit("benefit_grant.revoked", serialize_grant_webhook(flow.store, grant))
        flow.state_changed(customer)
    if grants:
        customer_meters.refresh(flow.store, customer)


def subscription_grants(store: Store, sub: dict[str, Any]) -> list[dict[str, Any]]:
    """The subscription's granted grants."""
    return [g for g in active_grants(store, sub["customer_id"]) if g["subscription_id"] == sub["id"]]


def subscription_meter_ids(store: Store, sub: dict[str, Any]) -> set[str]:
    """Meters the subscription bills (metered prices) or credits (granted meter credits)."""
    ids = {
        p["meter_id"] for p in sub["prices"] if p.get("amount_type") == "metered_unit" and p.get("meter_id")
    }
    for grant in subscription_grants(store, sub):
        benefit = benefit_of(store, grant["benefit_id"], grant["_benefit"])
        props = benefit.get("properties") or {}
        if benefit.get("type") == "meter_credit" and props.get("meter_id"):
            ids.add(props["meter_id"])
    return ids


def reset_subscription_meters(flow: Flow, customer: dict[str, Any], sub: dict[str, Any]) -> None:
    """Polar's ``reset_meters`` at subscription start and at each cycle."""
    meter_ids = subscription_meter_ids(flow.store, sub)
    if meter_ids:
        customer_meters.reset(flow.store, customer, meter_ids)
        flow.state_changed(customer)


def cycle_grants(flow: Flow, customer: dict[str, Any], sub: dict[str, Any]) -> None:
    """After a paid cycle order: ``benefit_grant.cycled`` for every granted grant; meters reset
    and credits renewed."""
    for grant in subscription_grants(flow.store, sub):
        grant["modified_at"] = now(flow.store)
        flow.emit("benefit_grant.cycled", serialize_grant_webhook(flow.store, grant))
        flow.state_changed(customer)
    reset_subscription_meters(flow, customer, sub)


def swap_grants(flow: Flow, customer: dict[str, Any], sub: dict[str, Any]) -> None:
    """After a product change: outdated grants revoked, then the new product's benefits granted."""
    product = flow.store.collections["products"][sub["product_id"]]
    wanted = {b["id"] for b in product.get("benefits", [])}
    outdated = [g for g in subscription_grants(flow.store, sub) if g["benefit_id"] not in wanted]
    revoke_grants(flow, customer, outdated)
    grant_product_benefits(flow, customer, product, subscription_id=sub["id"], order_id=None)
