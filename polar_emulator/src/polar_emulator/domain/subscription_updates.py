"""Changes to a live subscription: ``PATCH /v1/subscriptions/{id}`` and the control API (NOTES 10.4).

- **Cancel at period end:** ``canceled_at`` now, ``cancel_at_period_end``, ``ends_at`` = the
  period end; still ``active``, benefits kept. ``subscription.updated``, ``subscription.canceled``.
  Again → 403 ``AlreadyCanceledSubscription``.
- **Uncancel:** clears the cancellation and its reasons. ``subscription.updated``,
  ``subscription.uncanceled``. Ended → 410; nothing scheduled → 409
  ``SubscriptionNotScheduledToCancel`` (as polar-sdk 1.0.2 types it; the snapshot server said 400).
- **Product change:** 403 when canceled or set to cancel; 422 for a product that is archived, not
  recurring, from another organization, without a fixed or free price in the subscription's
  currency, or with a custom price. ``proration_behavior``: ``prorate`` (the default, switch now,
  ``subscription.updated``), ``invoice`` (switch now and bill the prorated difference:
  ``order.created`` ``pending`` with ``billing_reason`` ``subscription_update``,
  ``subscription.updated``, ``order.updated``, ``order.paid``), ``next_period`` (a
  ``pending_update`` applied at the next renewal, ``subscription.updated``); ``reset`` → 422.
  Outdated grants are revoked, then the new product's granted.

Each subscription update also triggers the debounced ``customer.state_changed``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from polar_emulator.domain.benefit_jobs import swap_grants
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.orders import mark_paid, new_order, serialize_order
from polar_emulator.domain.store import Store, now
from polar_emulator.domain.subscriptions import prices_amount, product_prices, serialize_subscription
from polar_emulator.errors import ApiError, polar_error, validation_error, validation_item
from polar_emulator.tokens import new_id


def already_canceled(detail: str = "This subscription is already canceled.") -> ApiError:
    return polar_error(403, "AlreadyCanceledSubscription", detail)


def is_ended(sub: dict[str, Any]) -> bool:
    return sub["ended_at"] is not None or sub["status"] == "canceled"


def _flow(store: Store, sub: dict[str, Any]) -> tuple[Flow, dict[str, Any]]:
    return Flow(store, sub["organization_id"]), customers_of(store)[sub["customer_id"]]


def _updated(flow: Flow, customer: dict[str, Any], sub: dict[str, Any], *also: str) -> None:
    data = serialize_subscription(flow.store, sub)
    flow.emit("subscription.updated", data)
    for event_type in also:
        flow.emit(event_type, data)
    flow.state_changed(customer)


def cancel_at_period_end(
    store: Store, sub: dict[str, Any], *, reason: str | None = None, comment: str | None = None
) -> list[str]:
    if is_ended(sub):
        raise already_canceled()
    if sub["cancel_at_period_end"]:
        raise already_canceled("This subscription is already set to cancel at the end of the period.")
    flow, customer = _flow(store, sub)
    sub.update(
        canceled_at=now(store),
        cancel_at_period_end=True,
        ends_at=sub["current_period_end"],
        customer_cancellation_reason=reason,
        customer_cancellation_comment=comment,
        modified_at=now(store),
    )
    _updated(flow, customer, sub, "subscription.canceled")
    return flow.finish()


def uncancel(store: Store, sub: dict[str, Any]) -> list[str]:
    if is_ended(sub):
        raise polar_error(410, "ResourceUnavailable", "This subscription has ended.")
    if not (sub["cancel_at_period_end"] or sub["ends_at"]):
        raise polar_error(
            409, "SubscriptionNotScheduledToCancel", "This subscription is not scheduled to be canceled."
        )
    flow, customer = _flow(store, sub)
    sub.update(
        cancel_at_period_end=False,
        ends_at=None,
        canceled_at=None,
        customer_cancellation_reason=None,
        customer_cancellation_comment=None,
        modified_at=now(store),
    )
    _updated(flow, customer, sub, "subscription.uncanceled")
    return flow.finish()


def update_metadata(store: Store, sub: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    flow, customer = _flow(store, sub)
    sub.update(metadata=dict(metadata), modified_at=now(store))
    _updated(flow, customer, sub)
    return flow.finish()


def clear_pending_update(store: Store, sub: dict[str, Any]) -> list[str]:
    flow, customer = _flow(store, sub)
    sub.update(pending_update=None, modified_at=now(store))
    _updated(flow, customer, sub)
    return flow.finish()


def _invalid_product(message: str, product_id: str) -> ApiError:
    return validation_error(validation_item(["body", "product_id"], message, "value_error", product_id))


def check_new_product(store: Store, sub: dict[str, Any], product_id: str) -> dict[str, Any]:
    """The product a subscription may move to (``validate_product_change``), else a 403 or 422."""
    if is_ended(sub):
        raise already_canceled()
    if sub["cancel_at_period_end"]:
        raise already_canceled("This subscription will be canceled at the end of the period.")
    product = store.collections["products"].get(product_id)
    if product is None or product["organization_id"] != sub["organization_id"]:
        raise _invalid_product("Product does not exist.", product_id)
    if product.get("is_archived"):
        raise _invalid_product("Product is archived.", product_id)
    if not product.get("is_recurring"):
        raise _invalid_product("Product is not recurring.", product_id)
    prices = product_prices(product)
    if any(p.get("amount_type") == "custom" for p in prices):
        raise _invalid_product("Can't update to a product with a custom price.", product_id)
    if not any(p.get("price_currency", sub["currency"]) == sub["currency"] for p in prices):
        raise _invalid_product("Product has no price in the subscription's currency.", product_id)
    if any(p.get("amount_type") == "seat_based" for p in prices):
        raise _invalid_product("Can't update to a seat-based product.", product_id)
    return product


def _prorated(sub: dict[str, Any], old_amount: int, new_amount: int, at: datetime) -> int:
    """The share of the price difference left in the current period."""
    start = datetime.fromisoformat(sub["current_period_start"])
    end = datetime.fromisoformat(sub["current_period_end"])
    total = (end - start).total_seconds()
    left = min(max((end - at).total_seconds(), 0.0), total) if total > 0 else 0.0
    return max(0, round((new_amount - old_amount) * (left / total if total else 0)))


def change_product(
    store: Store, sub: dict[str, Any], product_id: str, proration_behavior: str | None = None
) -> list[str]:
    product = check_new_product(store, sub, product_id)
    behavior = proration_behavior or "prorate"
    if behavior == "reset":
        raise validation_error(
            validation_item(
                ["body", "proration_behavior"],
                "The reset proration behavior is not enabled for this organization.",
                "value_error",
                behavior,
            )
        )
    flow, customer = _flow(store, sub)
    if product["id"] == sub["product_id"]:
        return flow.finish()
    if behavior == "next_period":
        sub["pending_update"] = {
            "created_at": now(store),
            "modified_at": None,
            "id": new_id(),
            "applies_at": sub["current_period_end"],
            "product_id": product["id"],
            "seats": None,
            "units": None,
        }
        sub["modified_at"] = now(store)
        _updated(flow, customer, sub)
        return flow.finish()

    prices = product_prices(product)
    new_amount = prices_amount(prices)[0]
    order = None
    if behavior == "invoice":
        amount = _prorated(sub, sub["amount"], new_amount, store.clock.now())
        order = new_order(
            store,
            customer,
            product,
            checkout_id=None,
            subscription=sub,
            billing_reason="subscription_update",
            prices=[p for p in prices if p.get("amount_type") == "fixed"][:1],
            period=(store.clock.now(), datetime.fromisoformat(sub["current_period_end"])),
        )
        for item in order["items"]:
            item.update(label=f"Prorated: {product['name']}", amount=amount, proration=True)
        order.update(subtotal_amount=amount, net_amount=amount, total_amount=amount, due_amount=amount)
        flow.emit("order.created", serialize_order(store, order))
    sub.update(
        product_id=product["id"],
        prices=prices,
        amount=new_amount,
        recurring_interval=product.get("recurring_interval") or sub["recurring_interval"],
        recurring_interval_count=product.get("recurring_interval_count") or 1,
        pending_update=None,
        modified_at=now(store),
    )
    _updated(flow, customer, sub)
    if order is not None:
        mark_paid(store, order)
        flow.emit("order.updated", serialize_order(store, order))
        flow.emit("order.paid", serialize_order(store, order))
    swap_grants(flow, customer, sub)
    return flow.finish()
