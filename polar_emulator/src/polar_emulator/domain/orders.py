"""Orders, as created by purchases, renewals and subscription updates.

Orders live in ``store.collections["orders"]`` as the flat ``Order`` fields plus
``organization_id``; :func:`serialize_order` adds ``customer``, ``product`` (``OrderProduct``)
and ``subscription`` (``OrderSubscription``).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.customers import customers_of, serialize_customer
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import (
    add_interval,
    prices_amount,
    product_prices,
    serialize_order_subscription,
    subscriptions_of,
)
from polar_emulator.tokens import new_id

_ORDER_PRODUCT_DROP = ("prices", "benefits", "medias", "attached_custom_fields", "is_deletable")


def orders_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["orders"]


def _invoice_number(store: Store, organization_id: str) -> str:
    counters = store.extra.setdefault("invoice_counters", {})
    counters[organization_id] = counters.get(organization_id, 0) + 1
    slug = store.organizations.get(organization_id, {}).get("slug", "POLAR")
    return f"{slug.upper().replace('-', '')[:8]}-{counters[organization_id]:04d}"


def new_order(
    store: Store,
    customer: dict[str, Any],
    product: dict[str, Any],
    *,
    checkout_id: str | None,
    subscription: dict[str, Any] | None,
    billing_reason: str | None = None,
    prices: list[dict[str, Any]] | None = None,
    period: tuple[datetime, datetime] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pending order for one purchase of ``product``; :func:`mark_paid` settles it.

    ``billing_reason`` defaults to ``subscription_create`` with a subscription, else
    ``purchase``; ``prices`` (default: the product's) and ``period`` (default: one interval from
    now, for recurring products) make the line items.
    """
    now = store.clock.now()
    prices = product_prices(product) if prices is None else prices
    amount, currency = prices_amount(prices)
    start = now
    end = (
        add_interval(now, product["recurring_interval"], product.get("recurring_interval_count") or 1)
        if (product.get("is_recurring") and product.get("recurring_interval"))
        else None
    )
    if period is not None:
        start, end = period
    items = [
        {
            "created_at": isoformat(now),
            "modified_at": None,
            "id": new_id(),
            "label": product["name"],
            "amount": price.get("price_amount") or 0,
            "tax_amount": 0,
            "proration": False,
            "product_price_id": price["id"],
            "start_timestamp": isoformat(start) if end else None,
            "end_timestamp": isoformat(end) if end else None,
        }
        for price in prices
    ]
    order = {
        "id": new_id(),
        "created_at": isoformat(now),
        "modified_at": None,
        "status": "pending",
        "paid": False,
        "subtotal_amount": amount,
        "discount_amount": 0,
        "net_amount": amount,
        "tax_amount": 0,
        "total_amount": amount,
        "applied_balance_amount": 0,
        "due_amount": amount,
        "refunded_amount": 0,
        "refunded_tax_amount": 0,
        "currency": currency,
        "billing_reason": billing_reason or ("subscription_create" if subscription else "purchase"),
        "billing_name": customer.get("billing_name") or customer.get("name"),
        "billing_address": copy.deepcopy(customer.get("billing_address")),
        "invoice_number": _invoice_number(store, customer["organization_id"]),
        "is_invoice_generated": False,
        "receipt_number": None,
        "seats": None,
        "units": None,
        "customer_id": customer["id"],
        "product_id": product["id"],
        "discount_id": None,
        "subscription_id": subscription["id"] if subscription else None,
        "checkout_id": checkout_id,
        "next_payment_attempt_at": None,
        "metadata": dict(metadata or {}),
        "custom_field_data": {},
        "platform_fee_amount": 0,
        "platform_fee_currency": None,
        "items": items,
        "description": product["name"],
        "refundable_amount": 0,
        "refundable_tax_amount": 0,
        "organization_id": customer["organization_id"],
    }
    orders_of(store)[order["id"]] = order
    return order


def orders_of_subscription(store: Store, subscription_id: str, status: str) -> list[dict[str, Any]]:
    return [
        o
        for o in orders_of(store).values()
        if o["subscription_id"] == subscription_id and o["status"] == status
    ]


def mark_paid(store: Store, order: dict[str, Any]) -> None:
    order.update(
        next_payment_attempt_at=None,
        status="paid",
        paid=True,
        due_amount=0,
        refundable_amount=order["total_amount"],
        modified_at=isoformat(store.clock.now()),
    )


def order_product(product: dict[str, Any]) -> dict[str, Any]:
    """``OrderProduct``: the product without prices, benefits and medias."""
    return {k: copy.deepcopy(v) for k, v in product.items() if k not in _ORDER_PRODUCT_DROP}


def serialize_order(store: Store, order: dict[str, Any]) -> dict[str, Any]:
    """``Order`` with ``customer``, ``product``, ``discount`` and ``subscription``."""
    data = {k: copy.deepcopy(v) for k, v in order.items() if k != "organization_id"}
    data["customer"] = serialize_customer(customers_of(store)[order["customer_id"]])
    product = store.collections["products"].get(order["product_id"] or "")
    data["product"] = order_product(product) if product else None
    data["discount"] = None
    sub = subscriptions_of(store).get(order["subscription_id"] or "")
    data["subscription"] = serialize_order_subscription(sub) if sub else None
    return data
