"""Checkout sessions.

Checkouts live in ``store.collections["checkouts"]`` in their API shape, except that
``success_url`` keeps the literal ``{CHECKOUT_ID}`` placeholder, filled in by
:func:`serialize_checkout` as Polar's model does when the URL is read; an open checkout past
``expires_at`` reads as ``expired``.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import product_prices
from polar_emulator.tokens import generate_token, new_id

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


def select_product(store: Store, checkout: dict[str, Any], product: dict[str, Any]) -> None:
    """Select another of the checkout's products (the hosted page's update): product, price and
    amounts follow it."""
    prices = product_prices(product)
    price = prices[0] if prices else None
    amount = (price or {}).get("price_amount") or 0
    is_free = amount == 0
    checkout.update(
        product_id=product["id"],
        product=checkout_product(product),
        product_price_id=(price or {}).get("id"),
        product_price=copy.deepcopy(price),
        amount=amount,
        net_amount=amount,
        total_amount=amount,
        currency=(price or {}).get("price_currency") or "usd",
        is_discount_applicable=not is_free,
        is_free_product_price=is_free,
        is_payment_required=not is_free,
        is_payment_setup_required=bool(product.get("is_recurring")) and not is_free,
        is_payment_form_required=not is_free,
        modified_at=isoformat(store.clock.now()),
    )


def is_expired(store: Store, checkout: dict[str, Any]) -> bool:
    return (
        checkout["status"] == "open" and datetime.fromisoformat(checkout["expires_at"]) <= store.clock.now()
    )


def by_client_secret(store: Store, client_secret: str) -> dict[str, Any] | None:
    return next((c for c in checkouts_of(store).values() if c["client_secret"] == client_secret), None)
