"""The end of a billing period, as Polar's ``subscription.cycle`` runs it (NOTES 10.3 and 10.4).

The emulator's clock does not move: the new period starts at the old ``current_period_end``
whatever the time, and the renewal order is dated now.

- **Renewal, paid:** ``subscription.cycled``, ``subscription.updated``, ``order.created``
  (``pending``, ``billing_reason`` ``subscription_cycle``), ``order.updated``, ``order.paid``,
  ``benefit_grant.cycled`` per granted grant (meters reset, credits renewed), then one
  ``customer.state_changed``. A ``pending_update`` (a product change for the next period) applies.
- **Renewal, payment fails:** the same up to ``order.created``; then the subscription goes
  ``past_due`` (``subscription.updated``, ``subscription.past_due``), the order stays ``pending``
  with ``next_payment_attempt_at`` (2 days, Polar's first dunning retry), and the benefits are
  revoked at once (``benefit_grant.revoked`` each; no grace period). Past-due subscriptions are
  no longer in the customer state's ``active_subscriptions``.
- **Recovery** (a retry succeeds): ``subscription.updated``, ``subscription.active``,
  ``order.updated``, ``order.paid``, the grants re-granted (``benefit_grant.created``, same ids).
- **Cancellation at period end:** ``canceled``, ``ended_at`` now, periods unchanged, no order:
  ``subscription.updated``, ``subscription.canceled`` (a second time), ``subscription.revoked``,
  ``benefit_grant.revoked`` per grant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.benefit_jobs import (
    cycle_grants,
    grant_product_benefits,
    revoke_grants,
    subscription_grants,
    swap_grants,
)
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.orders import (
    mark_paid,
    new_order,
    orders_of_subscription,
    serialize_order,
)
from polar_emulator.domain.store import Store, now
from polar_emulator.domain.subscriptions import (
    add_interval,
    prices_amount,
    product_prices,
    serialize_subscription,
)
from polar_emulator.errors import ApiError, polar_error

FIRST_RETRY_DAYS = 2  # DUNNING_RETRY_INTERVALS[0]


def _not_renewable(detail: str) -> ApiError:
    return polar_error(409, "SubscriptionNotRenewable", detail)


def _apply_pending_update(store: Store, sub: dict[str, Any]) -> None:
    pending = sub.get("pending_update")
    if not pending:
        return
    product = store.collections["products"].get(pending.get("product_id") or "")
    if product is not None:
        prices = product_prices(product)
        sub.update(
            product_id=product["id"],
            prices=prices,
            amount=prices_amount(prices)[0],
            recurring_interval=product.get("recurring_interval") or sub["recurring_interval"],
            recurring_interval_count=product.get("recurring_interval_count") or 1,
        )
    sub["pending_update"] = None


def renew(store: Store, sub: dict[str, Any], *, payment_succeeds: bool = True) -> list[str]:
    """The subscription's period ends now; returns the event types sent, in order.

    A subscription set to cancel at period end ends instead; a past-due one is recovered when
    ``payment_succeeds`` (a retry), and refused otherwise; an ended one is refused (409).
    """
    if sub["ended_at"] is not None or sub["status"] in ("canceled", "incomplete_expired", "unpaid"):
        raise _not_renewable("This subscription has ended.")
    if sub["status"] == "past_due":
        if not payment_succeeds:
            raise _not_renewable("This subscription is already past due.")
        return recover(store, sub)
    if sub["cancel_at_period_end"]:
        return end_at_period_end(store, sub)
    if sub["status"] not in ("active", "trialing"):
        raise _not_renewable(f"A {sub['status']} subscription does not renew here.")
    return _cycle(store, sub, payment_succeeds=payment_succeeds)


def _cycle(store: Store, sub: dict[str, Any], *, payment_succeeds: bool) -> list[str]:
    flow = Flow(store, sub["organization_id"])
    customer = customers_of(store)[sub["customer_id"]]
    start = datetime.fromisoformat(sub["current_period_end"])
    product_before = sub["product_id"]
    _apply_pending_update(store, sub)
    end = add_interval(start, sub["recurring_interval"], sub["recurring_interval_count"] or 1)
    sub.update(
        status="active",  # a trial converts; an active subscription stays active
        current_period_start=isoformat(start),
        current_period_end=isoformat(end),
        modified_at=now(store),
    )
    data = serialize_subscription(store, sub)
    flow.emit("subscription.cycled", data)
    flow.emit("subscription.updated", data)
    flow.state_changed(customer)
    if sub["product_id"] != product_before:
        swap_grants(flow, customer, sub)

    product = store.collections["products"][sub["product_id"]]
    order = new_order(
        store,
        customer,
        product,
        checkout_id=None,
        subscription=sub,
        billing_reason="subscription_cycle",
        prices=sub["prices"],
        period=(start, end),
    )
    flow.emit("order.created", serialize_order(store, order))
    if payment_succeeds or order["due_amount"] <= 0:
        mark_paid(store, order)
        flow.emit("order.updated", serialize_order(store, order))
        flow.emit("order.paid", serialize_order(store, order))
        cycle_grants(flow, customer, sub)
        return flow.finish()

    # The renewal payment failed: first dunning attempt.
    order.update(
        next_payment_attempt_at=isoformat(store.clock.now() + timedelta(days=FIRST_RETRY_DAYS)),
        modified_at=now(store),
    )
    sub.update(status="past_due", past_due_at=now(store), modified_at=now(store))
    data = serialize_subscription(store, sub)
    flow.emit("subscription.updated", data)
    flow.emit("subscription.past_due", data)
    revoke_grants(flow, customer, subscription_grants(store, sub))
    return flow.finish()


def recover(store: Store, sub: dict[str, Any]) -> list[str]:
    """A retry of the past-due renewal succeeds: active again, order paid, benefits re-granted."""
    pending = orders_of_subscription(store, sub["id"], "pending")
    if sub["status"] != "past_due" or not pending:
        raise _not_renewable("This subscription has no past-due payment.")
    flow = Flow(store, sub["organization_id"])
    customer = customers_of(store)[sub["customer_id"]]
    sub.update(status="active", past_due_at=None, modified_at=now(store))
    data = serialize_subscription(store, sub)
    flow.emit("subscription.updated", data)
    flow.emit("subscription.active", data)
    flow.state_changed(customer)
    for order in pending:
        mark_paid(store, order)
        flow.emit("order.updated", serialize_order(store, order))
        flow.emit("order.paid", serialize_order(store, order))
    product = store.collections["products"][sub["product_id"]]
    grant_product_benefits(flow, customer, product, subscription_id=sub["id"], order_id=None)
    return flow.finish()


def end_at_period_end(store: Store, sub: dict[str, Any]) -> list[str]:
    """A cancellation scheduled for the period end takes effect."""
    flow = Flow(store, sub["organization_id"])
    customer = customers_of(store)[sub["customer_id"]]
    sub.update(status="canceled", ended_at=now(store), modified_at=now(store))
    data = serialize_subscription(store, sub)
    flow.emit("subscription.updated", data)
    flow.emit("subscription.canceled", data)
    flow.emit("subscription.revoked", data)
    flow.state_changed(customer)
    revoke_grants(flow, customer, subscription_grants(store, sub))
    return flow.finish()
