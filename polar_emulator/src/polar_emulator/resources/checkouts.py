"""Checkout sessions: create and get under ``/v1/checkouts/`` (plus list), kept as
``domain/checkouts.py`` says."""

from __future__ import annotations

import copy
import uuid
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, note
from polar_emulator.domain.checkouts import STATUSES, new_checkout, serialize_checkout
from polar_emulator.domain.customers import customers_of, find_by_external_id
from polar_emulator.domain.store import Store
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import validation_error, validation_item
from polar_emulator.resources.common import AddressInput, Email, LooseMetadata, Resource, query_list

CHECKOUTS = Resource("checkouts", sortable=("created_at", "expires_at", "status"))
router = CHECKOUTS.router
READ, WRITE = CHECKOUTS.read, CHECKOUTS.write


class CheckoutCreate(BaseModel):
    """``CheckoutProductsCreate``."""

    products: Annotated[list[uuid.UUID], Field(min_length=1)]
    trial_interval: str | None = None
    trial_interval_count: int | None = None
    metadata: LooseMetadata = Field(default_factory=dict)
    custom_field_data: dict[str, Any] = Field(default_factory=dict)
    discount_id: uuid.UUID | None = None
    allow_discount_codes: bool = True
    require_billing_address: bool = False
    amount: int | None = None
    seats: int | None = None
    min_seats: int | None = None
    max_seats: int | None = None
    allow_trial: bool = True
    customer_id: uuid.UUID | None = None
    is_business_customer: bool = False
    external_customer_id: str | None = None
    customer_name: str | None = None
    customer_email: Email | None = None
    customer_ip_address: str | None = None
    customer_billing_name: str | None = None
    customer_billing_address: AddressInput | None = None
    customer_tax_id: str | None = None
    customer_metadata: LooseMetadata = Field(default_factory=dict)
    subscription_id: uuid.UUID | None = None
    success_url: str | None = None
    return_url: str | None = None
    embed_origin: str | None = None
    locale: str | None = None
    currency: str | None = None
    prices: dict[str, Any] | None = None


def _resolve_products(store: Store, reachable: list[str], ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    products = store.collections["products"]
    found, errors = [], []
    for i, pid in enumerate(ids):
        product = products.get(str(pid))
        if product is None or product["organization_id"] not in reachable:
            errors.append(
                validation_item(["body", "products", i], "Product does not exist.", "value_error", str(pid))
            )
        elif product.get("is_archived"):
            errors.append(
                validation_item(["body", "products", i], "Product is archived.", "value_error", str(pid))
            )
        else:
            found.append(product)
    if errors:
        raise validation_error(*errors)
    if len({p["organization_id"] for p in found}) > 1:
        raise validation_error(
            validation_item(
                ["body", "products"],
                "Products must all belong to the same organization.",
                "value_error",
                None,
            )
        )
    return found


@router.post("/", status_code=201)
async def create_checkout(request: Request, body: CheckoutCreate) -> dict[str, Any]:
    subject = authenticate(request, WRITE)
    store = get_store(request)
    products = _resolve_products(store, subject.organization_ids(), body.products)
    organization_id = products[0]["organization_id"]
    note(request, organization_id=organization_id)
    customer = None
    if body.customer_id is not None:
        customer = customers_of(store).get(str(body.customer_id))
        if customer is None or customer["organization_id"] != organization_id or customer["deleted_at"]:
            raise validation_error(
                validation_item(
                    ["body", "customer_id"], "Customer does not exist.", "value_error", str(body.customer_id)
                )
            )
    elif body.external_customer_id is not None:
        matches = find_by_external_id(store, {organization_id}, body.external_customer_id)
        customer = matches[0] if matches else None
    if body.success_url is not None and not body.success_url.startswith(("http://", "https://")):
        raise validation_error(
            validation_item(
                ["body", "success_url"],
                "Input should be a valid URL, relative URL without a base",
                "url_parsing",
                body.success_url,
            )
        )
    options = body.model_dump(
        include={
            "custom_field_data",
            "embed_origin",
            "seats",
            "min_seats",
            "max_seats",
            "allow_trial",
            "allow_discount_codes",
            "require_billing_address",
            "is_business_customer",
            "customer_ip_address",
            "customer_billing_name",
            "customer_billing_address",
            "customer_tax_id",
            "locale",
            "trial_interval",
            "trial_interval_count",
        }
    )
    checkout = new_checkout(
        store,
        products,
        str(request.base_url),
        customer=customer,
        external_customer_id=body.external_customer_id,
        customer_email=body.customer_email,
        customer_name=body.customer_name,
        metadata=body.metadata,
        customer_metadata=body.customer_metadata,
        success_url=body.success_url,
        return_url=body.return_url,
        options=options,
    )
    data = serialize_checkout(store, checkout)
    emit_event(store, organization_id, "checkout.created", copy.deepcopy(data))
    return data


@router.get("/")
async def list_checkouts(request: Request) -> dict[str, Any]:
    return CHECKOUTS.list_by_keys(request, _select_checkouts)


def _select_checkouts(request: Request, store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` serialized (an open checkout past its expiry reads as expired), then filtered."""
    product_ids = request.query_params.getlist("product_id")
    customer_ids = request.query_params.getlist("customer_id")
    external_ids = request.query_params.getlist("external_customer_id")
    statuses = query_list(request, "status", STATUSES)
    query = (request.query_params.get("query") or "").lower()
    items = [serialize_checkout(store, c) for c in items]
    return [
        c
        for c in items
        if (not product_ids or c["product_id"] in product_ids)
        and (not customer_ids or c["customer_id"] in customer_ids)
        and (not external_ids or c["external_customer_id"] in external_ids)
        and (not statuses or c["status"] in statuses)
        and (not query or query in (c["customer_email"] or "").lower())
    ]


@router.get("/{id}")
async def get_checkout(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    checkout = CHECKOUTS.read_one(request, id)
    return serialize_checkout(get_store(request), checkout)
