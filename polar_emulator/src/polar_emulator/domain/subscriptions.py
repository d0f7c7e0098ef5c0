"""Subscriptions, in ``store.collections["subscriptions"]`` as flat records: the
``OrderSubscription`` fields plus ``organization_id``, ``prices`` (bought at), ``meters`` and
``pending_update`` (a ``PendingSubscriptionUpdate``, or absent).
:func:`serialize_subscription` adds the live ``customer`` and ``product``, as Polar does.
"""

from __future__ import annotations

import calendar
import copy
from datetime import datetime, timedelta
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.customers import customers_of, serialize_customer
from polar_emulator.domain.store import Store
from polar_emulator.tokens import new_id

STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
ACTIVE_STATUSES = ("trialing", "active", "past_due")
_FLAT_ONLY = ("organization_id", "prices", "meters", "pending_update")


def subscriptions_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["subscriptions"]


def add_interval(start: datetime, interval: str, count: int = 1) -> datetime:
    """``start`` plus ``count`` intervals; months clamp to the month's last day."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def product_prices(product: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in product.get("prices", []) if not p.get("is_archived")]


def prices_amount(prices: list[dict[str, Any]]) -> tuple[int, str]:
    """The recurring amount of fixed prices and their currency."""
    amount = sum(p.get("price_amount") or 0 for p in prices if p.get("amount_type") == "fixed")
    currency = next((p["price_currency"] for p in prices if p.get("price_currency")), "usd")
    return amount, currency


def new_subscription(
    store: Store,
    customer: dict[str, Any],
    product: dict[str, Any],
    *,
    checkout_id: str | None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An active subscription to a recurring product, starting now. Does not emit events."""
    now = store.clock.now()
    prices = product_prices(product)
    amount, currency = prices_amount(prices)
    interval = product.get("recurring_interval") or "month"
    count = product.get("recurring_interval_count") or 1
    sub = {
        "metadata": dict(metadata or {}),
        "created_at": isoformat(now),
        "modified_at": None,
        "id": new_id(),
        "amount": amount,
        "currency": currency,
        "recurring_interval": interval,
        "recurring_interval_count": count,
        "status": "active",
        "current_period_start": isoformat(now),
        "current_period_end": isoformat(add_interval(now, interval, count)),
        "current_meter_period_start": None,
        "current_meter_period_end": None,
        "trial_start": None,
        "trial_end": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "started_at": isoformat(now),
        "ends_at": None,
        "ended_at": None,
        "past_due_at": None,
        "pause_at_period_end": False,
        "paused_at": None,
        "resumes_at": None,
        "customer_id": customer["id"],
        "product_id": product["id"],
        "discount_id": None,
        "checkout_id": checkout_id,
        "seats": None,
        "units": None,
        "customer_cancellation_reason": None,
        "customer_cancellation_comment": None,
        "custom_field_data": {},
        "organization_id": customer["organization_id"],
        "prices": copy.deepcopy(prices),
        "meters": [],
    }
    subscriptions_of(store)[sub["id"]] = sub
    return sub


def serialize_order_subscription(sub: dict[str, Any]) -> dict[str, Any]:
    """``OrderSubscription``: the subscription without nested objects."""
    return {k: copy.deepcopy(v) for k, v in sub.items() if k not in _FLAT_ONLY}


def serialize_subscription(store: Store, sub: dict[str, Any]) -> dict[str, Any]:
    """``Subscription``: flat fields plus ``customer``, ``product``, ``prices``, ``meters``."""
    data = serialize_order_subscription(sub)
    data["customer"] = serialize_customer(customers_of(store)[sub["customer_id"]])
    data["product"] = copy.deepcopy(store.collections["products"].get(sub["product_id"]))
    data["discount"] = None
    data["prices"] = copy.deepcopy(sub["prices"])
    data["meters"] = copy.deepcopy(sub["meters"])
    data["pending_update"] = copy.deepcopy(sub.get("pending_update"))
    return data


def is_active(sub: dict[str, Any]) -> bool:
    return sub["status"] in ACTIVE_STATUSES


def has_active_subscription(store: Store, customer_id: str) -> bool:
    return any(s["customer_id"] == customer_id and is_active(s) for s in subscriptions_of(store).values())


def state_subscriptions(store: Store, customer_id: str) -> list[dict[str, Any]]:
    """``CustomerStateSubscription`` items of the customer's active or trialing subscriptions."""
    keys = [
        "id",
        "created_at",
        "modified_at",
        "custom_field_data",
        "metadata",
        "status",
        "amount",
        "currency",
        "recurring_interval",
        "current_period_start",
        "current_period_end",
        "trial_start",
        "trial_end",
        "cancel_at_period_end",
        "canceled_at",
        "started_at",
        "ends_at",
        "product_id",
        "discount_id",
        "seats",
        "units",
    ]
    result = []
    for sub in subscriptions_of(store).values():
        if sub["customer_id"] == customer_id and sub["status"] in ("active", "trialing"):
            item = {k: copy.deepcopy(sub[k]) for k in keys}
            item["meters"] = [
                {
                    k: m[k]
                    for k in (
                        "created_at",
                        "modified_at",
                        "id",
                        "consumed_units",
                        "credited_units",
                        "amount",
                        "meter_id",
                    )
                }
                for m in sub["meters"]
            ]
            result.append(item)
    return sorted(result, key=lambda s: s["created_at"])
