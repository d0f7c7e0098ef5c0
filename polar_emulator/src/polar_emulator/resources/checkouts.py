"""Checkout sessions: create and get under ``/v1/checkouts/`` (plus list).

Checkouts live in ``store.collections["checkouts"]`` in their API shape, except that
``success_url`` keeps the literal ``{CHECKOUT_ID}`` placeholder, filled in by
:func:`serialize_checkout` as Polar's model does when the URL is read; an open checkout past
``expires_at`` reads as ``expired``.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, note
from polar_emulator.clock import isoformat
from polar_emulator.errors import validation_error, validation_item
from polar_emulator.resources.common import Resource, query_list
from polar_emulator.resources.customers import (
    AddressInput,
    Email,
    Metadata,
    customers_of,
    find_by_external_id,
)
from polar_emulator.resources.subscriptions import product_prices
from polar_emulator.store import Store
from polar_emulator.tokens import generate_token, new_id
from polar_emulator.webhooks.events import emit_event

CHECKOUTS = Resource("checkouts", sortable=("created_at", "expires_at", "status"))
router = CHECKOUTS.router
READ, WRITE = CHECKOUTS.read, CHECKOUTS.write
STATUSES = ("open", "expired", "confirmed", "succeeded", "failed")
TTL_SECONDS = 3600
PLACEHOLDER = "{CHECKOUT_ID}"

_BENEFIT_PUBLIC_KEYS = (
    "id",
    "created_at",
    "modified_at",
    "type",
    "description",
    "selectable",
    "deletable",
    "is_deleted",
    "organization_id",
)
_PRODUCT_ONLY_KEYS = ("metadata", "attached_custom_fields", "is_deletable")


class CheckoutCreate(BaseModel):
    """``CheckoutProductsCreate``."""

    products: Annotated[list[uuid.UUID], Field(min_length=1)]
    trial_interval: str | None = None
    trial_interval_count: int | None = None
    metadata: Metadata = Field(default_factory=dict)
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
    customer_metadata: Metadata = Field(default_factory=dict)
    subscription_id: uuid.UUID | None = None
    success_url: str | None = None
    return_url: str | None = None
    embed_origin: str | None = None
    locale: str | None = None
    currency: str | None = None
    prices: dict[str, Any] | None = None


def checkouts_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["checkouts"]


def checkout_product(product: dict[str, Any]) -> dict[str, Any]:
    """``CheckoutProduct``: a product with public benefits and without its private fields."""
    data = {k: copy.deepcopy(v) for k, v in product.items() if k not in _PRODUCT_ONLY_KEYS}
    data["benefits"] = [{k: b.get(k) for k in _BENEFIT_PUBLIC_KEYS} for b in product.get("benefits", [])]
    data.setdefault("medias", [])
    return data


def serialize_checkout(store: Store, checkout: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(checkout)
    data["success_url"] = data["success_url"].replace(PLACEHOLDER, data["id"])
    if data["status"] == "open" and datetime.fromisoformat(data["expires_at"]) <= store.clock.now():
        data["status"] = "expired"
    return data


def new_checkout(
    store: Store,
    products: list[dict[str, Any]],
    base_url: str,
    *,
    customer: dict[str, Any] | None = None,
    external_customer_id: str | None = None,
    customer_email: str | None = None,
    customer_name: str | None = None,
    metadata: dict[str, Any] | None = None,
    customer_metadata: dict[str, Any] | None = None,
    success_url: str | None = None,
    return_url: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create and store an open checkout for ``products`` (the first one selected). No events."""
    now = store.clock.now()
    product = products[0]
    prices = product_prices(product)
    price = prices[0] if prices else None
    amount = (price or {}).get("price_amount") or 0
    currency = (price or {}).get("price_currency") or "usd"
    is_free = amount == 0
    client_secret = generate_token("polar_c_")
    base_url = base_url.rstrip("/")
    options = options or {}
    checkout = {
        "id": new_id(),
        "created_at": isoformat(now),
        "modified_at": None,
        "custom_field_data": dict(options.get("custom_field_data") or {}),
        "payment_processor": "stripe",
        "status": "open",
        "client_secret": client_secret,
        "url": f"{base_url}/checkout/{client_secret}",
        "expires_at": isoformat(now + timedelta(seconds=TTL_SECONDS)),
        "success_url": success_url or f"{base_url}/checkout/{client_secret}/confirmation",
        "return_url": return_url,
        "embed_origin": options.get("embed_origin"),
        "amount": amount,
        "seats": options.get("seats"),
        "min_seats": options.get("min_seats"),
        "max_seats": options.get("max_seats"),
        "units": None,
        "min_units": None,
        "max_units": None,
        "discount_amount": 0,
        "net_amount": amount,
        "tax_amount": None,
        "tax_behavior": None,
        "total_amount": amount,
        "currency": currency,
        "allow_trial": options.get("allow_trial", True),
        "active_trial_interval": None,
        "active_trial_interval_count": None,
        "trial_end": None,
        "organization_id": product["organization_id"],
        "product_id": product["id"],
        "product_price_id": (price or {}).get("id"),
        "discount_id": None,
        "allow_discount_codes": options.get("allow_discount_codes", True),
        "require_billing_address": options.get("require_billing_address", False),
        "is_discount_applicable": not is_free,
        "is_free_product_price": is_free,
        "is_payment_required": not is_free,
        "is_payment_setup_required": bool(product.get("is_recurring")) and not is_free,
        "is_payment_form_required": not is_free,
        "customer_id": customer["id"] if customer else None,
        "is_business_customer": options.get("is_business_customer", False),
        "customer_name": customer_name or (customer or {}).get("name"),
        "customer_email": customer_email or (customer or {}).get("email"),
        "customer_ip_address": options.get("customer_ip_address"),
        "customer_billing_name": options.get("customer_billing_name"),
        "customer_billing_address": options.get("customer_billing_address"),
        "customer_tax_id": options.get("customer_tax_id"),
        "locale": options.get("locale"),
        "payment_method_type": None,
        "payment_processor_metadata": {},
        "billing_address_fields": {
            "country": "required",
            "state": "disabled",
            "city": "disabled",
            "postal_code": "disabled",
            "line1": "disabled",
            "line2": "disabled",
        },
        "trial_interval": options.get("trial_interval"),
        "trial_interval_count": options.get("trial_interval_count"),
        "metadata": dict(metadata or {}),
        "external_customer_id": external_customer_id or (customer or {}).get("external_id"),
        "products": [checkout_product(p) for p in products],
        "product": checkout_product(product),
        "product_price": copy.deepcopy(price),
        "prices": {p["id"]: copy.deepcopy(product_prices(p)) for p in products},
        "discount": None,
        "subscription_id": None,
        "attached_custom_fields": [],
        "customer_metadata": dict(customer_metadata or {}),
    }
    checkouts_of(store)[checkout["id"]] = checkout
    return checkout


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
