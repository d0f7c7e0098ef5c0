"""Customers: ``/v1/customers/``, lookups by external id, and customer state.

Customers live in ``store.collections["customers"]`` in their API shape (``CustomerIndividual`` /
``CustomerTeam``). Email and ``external_id`` are unique per organization; a duplicate is a 422
at the field (Polar's customer service), not a 409. Deleted customers keep their row with
``deleted_at`` set and are invisible to the API.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from polar_emulator.auth import authenticate, get_store, note
from polar_emulator.clock import isoformat
from polar_emulator.errors import ApiError, not_found, validation_error, validation_item
from polar_emulator.resources.common import (
    Resource,
    metadata_matches,
    metadata_query,
    query_bool,
)
from polar_emulator.store import Store
from polar_emulator.tokens import new_id
from polar_emulator.webhooks.events import emit_event


def _live_customer(store: Store, customer_id: str | uuid.UUID) -> dict[str, Any] | None:
    customer = store.collections["customers"].get(str(customer_id))
    return customer if customer is not None and customer["deleted_at"] is None else None


CUSTOMERS = Resource(
    "customers",
    manage=("customers:manage", "manage customers"),
    sortable=("created_at", "email", "name"),
    lookup=_live_customer,
)
router = CUSTOMERS.router
READ, WRITE = CUSTOMERS.read, CUSTOMERS.write

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if "@" not in value:
        raise ValueError("value is not a valid email address: An email address must have an @-sign.")
    if not _EMAIL.match(value):
        raise ValueError("value is not a valid email address: The part after the @-sign is not valid.")
    return value


Email = Annotated[str, AfterValidator(_check_email)]
MetadataValue = Annotated[str, Field(max_length=500)] | int | float | bool
Metadata = Annotated[dict[Annotated[str, Field(max_length=40)], MetadataValue], Field(max_length=50)]


class AddressInput(BaseModel):
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class CustomerCreate(BaseModel):
    metadata: Metadata = Field(default_factory=dict)
    external_id: str | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    billing_address: AddressInput | None = None
    tax_id: str | None = None
    locale: str | None = None
    organization_id: uuid.UUID | None = None
    owner: dict[str, Any] | None = None
    type: Literal["individual", "team"] = "individual"
    email: Email | None = None


class CustomerUpdateExternalID(BaseModel):
    metadata: Metadata | None = None
    email: Email | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    billing_address: AddressInput | None = None
    tax_id: str | None = None
    locale: str | None = None


class CustomerUpdate(CustomerUpdateExternalID):
    """The fields of :class:`CustomerUpdateExternalID`, then ``external_id`` and ``type``."""

    external_id: str | None = None
    type: Literal["individual", "team"] | None = None


# -- store access and serializers (used by checkouts, subscriptions, purchases, events) ---------


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


def _avatar_url(email: str | None) -> str | None:
    if not email:
        return None
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=404"


def _tax_id(value: str | None) -> list[str] | None:
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
    customer = {
        "id": new_id(),
        "created_at": isoformat(store.clock.now()),
        "modified_at": None,
        "metadata": dict(metadata or {}),
        "external_id": external_id,
        "email": email,
        "email_verified": False,
        "type": type_,
        "name": name,
        "billing_name": None,
        "billing_address": address,
        "tax_id": _tax_id(tax_id),
        "locale": locale,
        "organization_id": organization_id,
        "default_payment_method_id": None,
        "deleted_at": None,
        "first_user_event_at": None,
        "avatar_url": _avatar_url(email),
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


def customer_state(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    """The ``CustomerState`` shape: the customer plus active subscriptions, grants and meters."""
    from polar_emulator.resources.events import active_meters
    from polar_emulator.resources.subscriptions import state_benefit_grants, state_subscriptions

    state = serialize_customer(customer)
    state["active_subscriptions"] = state_subscriptions(store, customer["id"])
    state["granted_benefits"] = state_benefit_grants(store, customer["id"])
    state["active_meters"] = active_meters(store, customer)
    return state


def emit_state_changed(store: Store, customer: dict[str, Any]) -> None:
    emit_event(store, customer["organization_id"], "customer.state_changed", customer_state(store, customer))


# -- helpers for the handlers -----------------------------------------------------------------


def _check_unique(
    store: Store, organization_id: str, email: str | None, external_id: str | None, exclude: str | None = None
) -> None:
    errors = []
    if email is not None:
        other = find_by_email(store, organization_id, email)
        if other is not None and other["id"] != exclude:
            errors.append(
                validation_item(
                    ["body", "email"],
                    "A customer with this email address already exists.",
                    "value_error",
                    email,
                )
            )
    if external_id is not None:
        others = [c for c in find_by_external_id(store, {organization_id}, external_id) if c["id"] != exclude]
        if others:
            errors.append(
                validation_item(
                    ["body", "external_id"],
                    "A customer with this external ID already exists.",
                    "value_error",
                    external_id,
                )
            )
    if errors:
        raise validation_error(*errors)


def _by_external_id(request: Request, external_id: str, scopes: tuple[str, ...]) -> tuple[Store, Any, dict]:
    subject = authenticate(request, scopes)
    store = get_store(request)
    found = find_by_external_id(store, set(subject.organization_ids()), external_id)
    if not found:
        raise not_found()
    if len(found) > 1:
        # Polar's repository uses scalar_one_or_none() here: two orgs sharing the external id
        # raise MultipleResultsFound, which nothing handles (NOTES 7.1).
        raise ApiError(500, None)
    note(request, organization_id=found[0]["organization_id"])
    return store, subject, found[0]


def _get(request: Request, customer_id: uuid.UUID, scopes: tuple[str, ...]) -> tuple[Store, Any, dict]:
    subject = authenticate(request, scopes)
    return get_store(request), subject, CUSTOMERS.get(request, subject, customer_id)


def _apply_update(store: Store, customer: dict[str, Any], changes: dict[str, Any]) -> None:
    if "external_id" in changes:
        new = changes["external_id"]
        if customer["external_id"] is not None and new != customer["external_id"]:
            raise validation_error(
                validation_item(
                    ["body", "external_id"],
                    "Customer external ID cannot be updated once set.",
                    "value_error",
                    new,
                )
            )
    if changes.get("email") is None:
        changes.pop("email", None)
    _check_unique(
        store,
        customer["organization_id"],
        changes.get("email"),
        changes.get("external_id"),
        exclude=customer["id"],
    )
    for key, value in changes.items():
        if key == "billing_address":
            value = (
                None
                if value is None
                else {**{k: None for k in ("line1", "line2", "postal_code", "city", "state")}, **value}
            )
        elif key == "tax_id":
            value = _tax_id(value)
        elif key == "metadata" and value is None:
            continue
        customer[key] = value
    if "email" in changes:
        customer["email_verified"] = False
        customer["avatar_url"] = _avatar_url(customer["email"])
    customer["modified_at"] = isoformat(store.clock.now())


def _emit_updated(store: Store, customer: dict[str, Any]) -> None:
    emit_event(store, customer["organization_id"], "customer.updated", serialize_customer(customer))
    emit_state_changed(store, customer)


# -- routes ----------------------------------------------------------------------------------


@router.post("/", status_code=201)
async def create_customer(request: Request, body: CustomerCreate) -> dict[str, Any]:
    _, organization_id = CUSTOMERS.new_owner(request, body.organization_id)
    store = get_store(request)
    if body.type == "individual" and body.email is None:
        raise validation_error(validation_item(["body", "email"], "Field required", "missing", None))
    _check_unique(store, organization_id, body.email, body.external_id)
    customer = new_customer(
        store,
        organization_id,
        email=body.email,
        external_id=body.external_id,
        name=body.name,
        metadata=body.metadata,
        billing_address=body.billing_address.model_dump() if body.billing_address else None,
        tax_id=body.tax_id,
        locale=body.locale,
        type_=body.type,
    )
    emit_event(store, organization_id, "customer.created", serialize_customer(customer))
    return serialize_customer(customer)


@router.get("/")
async def list_customers(request: Request) -> dict[str, Any]:
    return CUSTOMERS.list_by_keys(request, _select_customers)


def _select_customers(request: Request, store: Store, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live customers among ``items`` that the list's query filters accept, serialized."""
    email = request.query_params.get("email")
    query = (request.query_params.get("query") or "").lower()
    active = query_bool(request, "active")
    wanted_metadata = metadata_query(request)
    items = [c for c in items if c["deleted_at"] is None]
    if email is not None:
        items = [c for c in items if (c["email"] or "").lower() == email.lower()]
    if query:
        items = [
            c
            for c in items
            if any(query in (c.get(k) or "").lower() for k in ("email", "name", "external_id"))
        ]
    if active is not None:
        from polar_emulator.resources.subscriptions import has_active_subscription

        items = [c for c in items if has_active_subscription(store, c["id"]) is active]
    if wanted_metadata:
        items = [c for c in items if metadata_matches(c["metadata"], wanted_metadata)]
    return [serialize_customer(c) for c in items]


@router.get("/external/{external_id}/state")
async def get_customer_state_external(request: Request, external_id: str) -> dict[str, Any]:
    store, _, customer = _by_external_id(request, external_id, READ)
    return customer_state(store, customer)


@router.get("/external/{external_id}")
async def get_customer_external(request: Request, external_id: str) -> dict[str, Any]:
    _, _, customer = _by_external_id(request, external_id, READ)
    return serialize_customer(customer)


@router.patch("/external/{external_id}")
async def update_customer_external(
    request: Request, external_id: str, body: CustomerUpdateExternalID
) -> dict[str, Any]:
    return _update(*_by_external_id(request, external_id, WRITE), body)


@router.delete("/external/{external_id}", status_code=204)
async def delete_customer_external(request: Request, external_id: str) -> Response:
    return _delete(*_by_external_id(request, external_id, WRITE), request)


@router.get("/{id}/state")
async def get_customer_state(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    store, _, customer = _get(request, id, READ)
    return customer_state(store, customer)


@router.get("/{id}")
async def get_customer(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    _, _, customer = _get(request, id, READ)
    return serialize_customer(customer)


@router.patch("/{id}")
async def update_customer(
    request: Request, id: Annotated[uuid.UUID, Path()], body: CustomerUpdate
) -> dict[str, Any]:
    return _update(*_get(request, id, WRITE), body)


@router.delete("/{id}", status_code=204)
async def delete_customer(request: Request, id: Annotated[uuid.UUID, Path()]) -> Response:
    return _delete(*_get(request, id, WRITE), request)


def _update(store: Store, subject: Any, customer: dict[str, Any], body: BaseModel) -> dict[str, Any]:
    CUSTOMERS.require(subject, customer["organization_id"])
    _apply_update(store, customer, body.model_dump(exclude_unset=True))
    _emit_updated(store, customer)
    return serialize_customer(customer)


def _delete(store: Store, subject: Any, customer: dict[str, Any], request: Request) -> Response:
    """Soft delete, as Polar; active subscriptions are revoked first."""
    from polar_emulator.resources.subscriptions import revoke_customer_subscriptions

    CUSTOMERS.require(subject, customer["organization_id"])
    revoke_customer_subscriptions(store, customer)
    if (request.query_params.get("anonymize") or "").lower() == "true":
        customer.update(
            email=None if customer["type"] == "team" else f"{new_id()}@anonymized.invalid", name=None
        )
        customer["avatar_url"] = None
    now = isoformat(store.clock.now())
    customer["deleted_at"] = now
    customer["modified_at"] = now
    emit_event(store, customer["organization_id"], "customer.deleted", serialize_customer(customer))
    return Response(status_code=204)


__all__ = [
    "customer_state",
    "customers_of",
    "emit_state_changed",
    "find_by_external_id",
    "get_or_create_by_external_id",
    "new_customer",
    "router",
    "serialize_customer",
]
