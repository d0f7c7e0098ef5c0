"""Subscriptions: list, get and revoke under ``/v1/subscriptions/``, kept as
``domain/subscriptions.py`` says."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, list_organization_ids
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.revocations import revoke_subscription
from polar_emulator.domain.subscriptions import STATUSES, is_active, serialize_subscription, subscriptions_of
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

SUBSCRIPTIONS = Resource("subscriptions")
router = SUBSCRIPTIONS.router
READ = SUBSCRIPTIONS.read


# -- routes ----------------------------------------------------------------------------------


def _filter_values(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name)


@router.get("/")
async def list_subscriptions(request: Request) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
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
