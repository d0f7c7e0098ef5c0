"""Orders: list and get under ``/v1/orders/``, kept as ``domain/orders.py`` says.

Reading takes the ``orders:read`` scope alone (the spec's security requirement; ``orders:write``
does not read).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, list_organization_ids
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.orders import orders_of, serialize_order
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import (
    Resource,
    metadata_matches,
    metadata_query,
    query_datetime,
    query_list,
    sort_by_keys,
)

ORDERS = Resource("orders", read_scopes=("orders:read",))
router = ORDERS.router
READ = ORDERS.read
STATUSES = ("draft", "pending", "paid", "refunded", "partially_refunded", "void")
BILLING_TYPES = ("one_time", "recurring")


@router.get("/")
async def list_orders(request: Request) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
    org_ids = list_organization_ids(request, subject)
    params = request.query_params
    product_ids = params.getlist("product_id")
    billing_types = query_list(request, "product_billing_type", BILLING_TYPES)
    discount_ids = params.getlist("discount_id")
    customer_ids = params.getlist("customer_id")
    external_ids = params.getlist("external_customer_id")
    checkout_ids = params.getlist("checkout_id")
    subscription_ids = params.getlist("subscription_id")
    statuses = query_list(request, "status", STATUSES)
    after = query_datetime(request, "created_after")
    before = query_datetime(request, "created_before")
    wanted_metadata = metadata_query(request)
    customers = customers_of(store)
    products = store.collections["products"]

    def billing_type(order: dict[str, Any]) -> str:
        product = products.get(order["product_id"] or "") or {}
        return "recurring" if product.get("is_recurring") else "one_time"

    def keep(order: dict[str, Any]) -> bool:
        created = datetime.fromisoformat(order["created_at"])
        return (
            order["organization_id"] in org_ids
            and (not product_ids or order["product_id"] in product_ids)
            and (not billing_types or billing_type(order) in billing_types)
            and (not discount_ids or order["discount_id"] in discount_ids)
            and (not customer_ids or order["customer_id"] in customer_ids)
            and (not external_ids or customers[order["customer_id"]]["external_id"] in external_ids)
            and (not checkout_ids or order["checkout_id"] in checkout_ids)
            and (not subscription_ids or order["subscription_id"] in subscription_ids)
            and (not statuses or order["status"] in statuses)
            and (after is None or created > after)
            and (before is None or created < before)
            and metadata_matches(order["metadata"], wanted_metadata)
        )

    items = [o for o in orders_of(store).values() if keep(o)]
    items = sort_by_keys(
        request,
        items,
        {
            "created_at": lambda o: o["created_at"],
            "status": lambda o: o["status"],
            "invoice_number": lambda o: o["invoice_number"],
            "amount": lambda o: o["total_amount"],
            "net_amount": lambda o: o["net_amount"],
            "customer": lambda o: customers[o["customer_id"]]["email"] or "",
            "product": lambda o: (products.get(o["product_id"] or "") or {}).get("name"),
            "discount": lambda o: o["discount_id"],
            "subscription": lambda o: o["subscription_id"],
        },
    )
    return paginate(request, [serialize_order(store, o) for o in items])


@router.get("/{id}")
async def get_order(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    order = ORDERS.read_one(request, id)
    return serialize_order(get_store(request), order)
