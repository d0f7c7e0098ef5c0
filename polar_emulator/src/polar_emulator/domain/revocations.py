"""Revoking subscriptions: they end now, their grants are revoked, pending orders are voided,
and Polar's events follow."""

from __future__ import annotations

from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.benefit_jobs import revoke_grants, subscription_grants
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.orders import orders_of_subscription, serialize_order
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import serialize_subscription, subscriptions_of


def revoke_subscription(
    store: Store, sub: dict[str, Any], *, reason: str | None = None, comment: str | None = None
) -> list[str]:
    """End the subscription now, revoke its grants, void its pending orders (``order.updated``,
    status ``void``), and emit Polar's events in Polar's order. No refund. Returns the event types."""
    now = isoformat(store.clock.now())
    if reason is not None:
        sub["customer_cancellation_reason"] = reason
    if comment is not None:
        sub["customer_cancellation_comment"] = comment
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ends_at=now,
        ended_at=now,
        cancel_at_period_end=False,
        modified_at=now,
    )
    flow = Flow(store, sub["organization_id"])
    customer = customers_of(store)[sub["customer_id"]]
    data = serialize_subscription(store, sub)
    flow.emit("subscription.updated", data)
    flow.emit("subscription.canceled", data)
    flow.emit("subscription.revoked", data)
    for order in orders_of_subscription(store, sub["id"], "pending"):
        order.update(status="void", next_payment_attempt_at=None, modified_at=now)
        flow.emit("order.updated", serialize_order(store, order))
    flow.state_changed(customer)
    revoke_grants(flow, customer, subscription_grants(store, sub))
    return flow.finish()


def revoke_customer_subscriptions(store: Store, customer: dict[str, Any]) -> None:
    for sub in list(subscriptions_of(store).values()):
        if sub["customer_id"] == customer["id"] and sub["ended_at"] is None:
            revoke_subscription(store, sub)
