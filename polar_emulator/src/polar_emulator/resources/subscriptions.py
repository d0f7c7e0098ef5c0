"""Subscriptions: list, get and revoke under ``/v1/subscriptions/``.

Subscriptions live in ``store.collections["subscriptions"]`` as flat records: the
``OrderSubscription`` fields plus ``organization_id``, ``prices`` (bought at) and ``meters``.
:func:`serialize_subscription` adds the live ``customer`` and ``product``, as Polar does.
"""

from __future__ import annotations

import calendar
import copy
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Path
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, list_organization_ids
from polar_emulator.clock import isoformat
from polar_emulator.errors import polar_error
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import (
    Resource,
    metadata_matches,
    metadata_query,
    query_bool,
    query_list,
    sort_by_keys,
)
from polar_emulator.resources.grants import (
    active_grants,
    revoke_grant,
    serialize_grant_webhook,
    serialize_state_grant,
)
from polar_emulator.store import Store
from polar_emulator.tokens import new_id
from polar_emulator.webhooks.events import emit_event

SUBSCRIPTIONS = Resource("subscriptions")
router = SUBSCRIPTIONS.router
READ = SUBSCRIPTIONS.read
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
_FLAT_ONLY = ("organization_id", "prices", "meters")


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
    store: Store, customer: dict[str, Any], product: dict[str, Any], *, checkout_id: str | None
) -> dict[str, Any]:
    """An active subscription to a recurring product, starting now. Does not emit events."""
    now = store.clock.now()
    prices = product_prices(product)
    amount, currency = prices_amount(prices)
    interval = product.get("recurring_interval") or "month"
    count = product.get("recurring_interval_count") or 1
    sub = {
        "metadata": {},
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
    from polar_emulator.resources.customers import customers_of, serialize_customer

    data = serialize_order_subscription(sub)
    data["customer"] = serialize_customer(customers_of(store)[sub["customer_id"]])
    data["product"] = copy.deepcopy(store.collections["products"].get(sub["product_id"]))
    data["discount"] = None
    data["prices"] = copy.deepcopy(sub["prices"])
    data["meters"] = copy.deepcopy(sub["meters"])
    data["pending_update"] = None
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


def state_benefit_grants(store: Store, customer_id: str) -> list[dict[str, Any]]:
    return [serialize_state_grant(store, g) for g in active_grants(store, customer_id)]


def revoke_subscription(store: Store, sub: dict[str, Any]) -> None:
    """End the subscription now, revoke its grants, and emit Polar's events in Polar's order."""
    from polar_emulator.resources.customers import customers_of, emit_state_changed

    now = isoformat(store.clock.now())
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ends_at=now,
        ended_at=now,
        cancel_at_period_end=False,
        modified_at=now,
    )
    org = sub["organization_id"]
    data = serialize_subscription(store, sub)
    emit_event(store, org, "subscription.updated", data)
    emit_event(store, org, "subscription.canceled", copy.deepcopy(data))
    emit_event(store, org, "subscription.revoked", copy.deepcopy(data))
    for grant in list(active_grants(store, sub["customer_id"])):
        if grant["subscription_id"] == sub["id"]:
            revoke_grant(store, grant)
            emit_event(store, org, "benefit_grant.revoked", serialize_grant_webhook(store, grant))
    emit_state_changed(store, customers_of(store)[sub["customer_id"]])


def revoke_customer_subscriptions(store: Store, customer: dict[str, Any]) -> None:
    for sub in list(subscriptions_of(store).values()):
        if sub["customer_id"] == customer["id"] and sub["ended_at"] is None:
            revoke_subscription(store, sub)


# -- routes ----------------------------------------------------------------------------------


def _filter_values(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name)


@router.get("/")
async def list_subscriptions(request: Request) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
    from polar_emulator.resources.customers import customers_of

    org_ids = list_organization_ids(request, subject)
    product_ids = _filter_values(request, "product_id")
    customer_ids = _filter_values(request, "customer_id")
    external_ids = _filter_values(request, "external_customer_id")
    statuses = query_list(request, "status", STATUSES)
    active = query_bool(request, "active")
    cancel_at_period_end = query_bool(request, "cancel_at_period_end")
    wanted_metadata = metadata_query(request)
    customers = customers_of(store)

    def keep(sub: dict[str, Any]) -> bool:
        customer = customers[sub["customer_id"]]
        return (
            sub["organization_id"] in org_ids
            and (not product_ids or sub["product_id"] in product_ids)
            and (not customer_ids or sub["customer_id"] in customer_ids)
            and (not external_ids or customer["external_id"] in external_ids)
            and (not statuses or sub["status"] in statuses)
            and (active is None or is_active(sub) is active)
            and (cancel_at_period_end is None or sub["cancel_at_period_end"] is cancel_at_period_end)
            and metadata_matches(sub["metadata"], wanted_metadata)
        )

    items = [s for s in subscriptions_of(store).values() if keep(s)]
    products = store.collections["products"]
    items = sort_by_keys(
        request,
        items,
        {
            "customer": lambda s: customers[s["customer_id"]]["email"] or "",
            "status": lambda s: s["status"],
            "started_at": lambda s: s["started_at"],
            "current_period_end": lambda s: s["current_period_end"],
            "ended_at": lambda s: s["ended_at"],
            "ends_at": lambda s: s["ends_at"],
            "amount": lambda s: s["amount"],
            "product": lambda s: (products.get(s["product_id"]) or {}).get("name", ""),
            "discount": lambda s: s["discount_id"],
        },
        default=("-started_at",),
    )
    return paginate(request, [serialize_subscription(store, s) for s in items])


@router.get("/{id}")
async def get_subscription(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    sub = SUBSCRIPTIONS.read_one(request, id)
    return serialize_subscription(get_store(request), sub)


@router.delete("/{id}")
async def revoke(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    _, sub = SUBSCRIPTIONS.for_write(request, id)
    store = get_store(request)
    if sub["ended_at"] is not None or sub["status"] == "canceled":
        raise polar_error(403, "AlreadyCanceledSubscription", "This subscription is already canceled.")
    revoke_subscription(store, sub)
    return serialize_subscription(store, sub)
