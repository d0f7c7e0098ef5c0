"""Customers, in ``store.collections["customers"]`` in their API shape (``CustomerIndividual`` /
``CustomerTeam``). Email and ``external_id`` are unique per organization. Deleted customers keep
their row with ``deleted_at`` set and are invisible to the API.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from typing import Any

from polar_emulator.domain.store import Store, now
from polar_emulator.tokens import new_id


def customers_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["customers"]


def live_customers(store: Store) -> list[dict[str, Any]]:
    return [c for c in customers_of(store).values() if c["deleted_at"] is None]


def serialize_customer(customer: dict[str, Any]) -> dict[str, Any]:
    """The ``Customer`` API shape (also ``SubscriptionCustomer`` / ``OrderCustomer``)."""
    return copy.deepcopy(customer)


def find_by_external_id(store: Store, organization_ids: set[str] | list[str], external_id: str) -> list[dict]:
    return [
        c
        for c in live_customers(store)
        if c["organization_id"] in organization_ids and c["external_id"] == external_id
    ]


def find_by_email(store: Store, organization_id: str, email: str) -> dict[str, Any] | None:
    email = email.lower()
    return next(
        (
            c
            for c in live_customers(store)
            if c["organization_id"] == organization_id and (c["email"] or "").lower() == email
        ),
        None,
    )


def avatar_url(email: str | None) -> str | None:
    if not email:
        return None
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=404"


def tax_id_value(value: str | None) -> list[str] | None:
    # Polar stores the validated id with its type, e.g. ["FR61954506077", "eu_vat"].
    return None if value is None else [value, "eu_vat"]


def new_customer(
    store: Store,
    organization_id: str,
    *,
    email: str | None,
    external_id: str | None = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    billing_address: dict[str, Any] | None = None,
    tax_id: str | None = None,
    locale: str | None = None,
    type_: str = "individual",
) -> dict[str, Any]:
    """Create and store a customer; callers check uniqueness first. Does not emit events."""
    address = None
    if billing_address is not None:
        address = {k: billing_address.get(k) for k in ("line1", "line2", "postal_code", "city", "state")}
        address["country"] = billing_address["country"]
    customer: dict[str, Any] = {
        "id": new_id(),
        "created_at": now(store),
        "modified_at": None,
        "metadata": dict(metadata or {}),
        "external_id": external_id,
        "email": email,
        "email_verified": False,
        "type": type_,
        "name": name,
        "billing_name": None,
        "billing_address": address,
        "tax_id": tax_id_value(tax_id),
        "locale": locale,
        "organization_id": organization_id,
        "default_payment_method_id": None,
        "deleted_at": None,
        "first_user_event_at": None,
        "avatar_url": avatar_url(email),
    }
    customers_of(store)[customer["id"]] = customer
    return customer


def get_or_create_by_external_id(
    store: Store, organization_id: str, external_id: str, email: str | None
) -> tuple[dict, bool]:
    """The org's customer with ``external_id``, created when missing; ``(customer, created)``."""
    found = find_by_external_id(store, {organization_id}, external_id)
    if found:
        return found[0], False
    if email is None or find_by_email(store, organization_id, email) is not None:
        email = f"{re.sub(r'[^A-Za-z0-9._+-]', '-', external_id)}@customers.polar.local"
    return new_customer(store, organization_id, email=email, external_id=external_id), True


def live_customer(store: Store, customer_id: str | uuid.UUID) -> dict[str, Any] | None:
    """The customer unless unknown or deleted."""
    customer = customers_of(store).get(str(customer_id))
    return customer if customer is not None and customer["deleted_at"] is None else None
