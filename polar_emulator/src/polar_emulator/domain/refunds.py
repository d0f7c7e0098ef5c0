"""Refunds of paid orders (NOTES 10.5; Polar's ``refund/service.py``).

Refunds live in ``store.collections["refunds"]`` in the ``Refund`` shape. A refund here succeeds
at once: ``refund.created`` (``succeeded``), then ``order.updated`` and ``order.refunded``. The
order becomes ``refunded`` once ``refunded_amount`` reaches ``net_amount + applied_balance_amount``,
else ``partially_refunded``; ``paid`` stays true. ``revoke_benefits`` revokes a one-time order's
grants (``benefit_grant.revoked`` each); on a subscription order it is a 400. A refund never
cancels a subscription.
"""

from __future__ import annotations

from typing import Any

from polar_emulator.domain.benefit_jobs import revoke_grants
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.grants import active_grants
from polar_emulator.domain.orders import serialize_order
from polar_emulator.domain.store import Store, now
from polar_emulator.errors import polar_error, validation_error, validation_item
from polar_emulator.tokens import new_id


def refund_order(
    store: Store,
    order: dict[str, Any],
    *,
    amount: int | None = None,
    reason: str = "customer_request",
    comment: str | None = None,
    revoke_benefits: bool = False,
    metadata: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Refund ``amount`` (cents, tax excluded; default: all that is left) of a paid order.

    Returns the refund and the event types sent. Raises 403 when the order is not paid or already
    fully refunded, 422 for an amount over what is refundable, 400 for ``revoke_benefits`` on a
    subscription order.
    """
    if order["status"] not in ("paid", "partially_refunded"):
        if order["status"] == "refunded":
            raise polar_error(403, "RefundedAlready", "Order is already fully refunded.")
        raise polar_error(403, "NotPaidOrder", "Order is not paid.")
    refundable = order["net_amount"] + order["applied_balance_amount"] - order["refunded_amount"]
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise validation_error(
            validation_item(
                ["body", "amount"],
                f"Refund amount must be between 1 and the refundable amount ({refundable}).",
                "value_error",
                amount,
            )
        )
    if revoke_benefits and order["subscription_id"] is not None:
        raise polar_error(
            400, "BadRequest", "Benefits of a subscription order are revoked by canceling the subscription."
        )
    # Tax is refunded pro rata; the last refund takes all the tax left.
    tax_left = order["tax_amount"] - order["refunded_tax_amount"]
    tax = (
        tax_left
        if amount == refundable
        else round(order["tax_amount"] * amount / max(order["net_amount"], 1))
    )
    refund = {
        "created_at": now(store),
        "modified_at": None,
        "id": new_id(),
        "metadata": dict(metadata or {}),
        "status": "succeeded",
        "reason": reason,
        "amount": amount,
        "tax_amount": tax,
        "currency": order["currency"],
        "organization_id": order["organization_id"],
        "order_id": order["id"],
        "subscription_id": order["subscription_id"],
        "customer_id": order["customer_id"],
        "revoke_benefits": revoke_benefits,
        "dispute": None,
        "comment": comment,
    }
    store.collections["refunds"][refund["id"]] = refund
    flow = Flow(store, order["organization_id"])
    flow.emit("refund.created", serialize_refund(refund))

    order["refunded_amount"] += amount
    order["refunded_tax_amount"] += tax
    fully = order["refunded_amount"] >= order["net_amount"] + order["applied_balance_amount"]
    order.update(
        status="refunded" if fully else "partially_refunded",
        refundable_amount=order["net_amount"] + order["applied_balance_amount"] - order["refunded_amount"],
        refundable_tax_amount=order["tax_amount"] - order["refunded_tax_amount"],
        modified_at=now(store),
    )
    data = serialize_order(store, order)
    flow.emit("order.updated", data)
    flow.emit("order.refunded", data)
    if revoke_benefits:
        customer = customers_of(store)[order["customer_id"]]
        grants = [g for g in active_grants(store, customer["id"]) if g["order_id"] == order["id"]]
        revoke_grants(flow, customer, grants)
    return refund, flow.finish()


def serialize_refund(refund: dict[str, Any]) -> dict[str, Any]:
    """``Refund`` (``comment`` is kept but not part of the API shape)."""
    return {k: v for k, v in refund.items() if k != "comment"}
