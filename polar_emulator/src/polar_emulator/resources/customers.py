"""Customers: ``/v1/customers/``, lookups by external id, and customer state.

Customers are kept as ``domain/customers.py`` says. A duplicate email or ``external_id`` in an
organization is a 422 at the field (Polar's customer service), not a 409.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from polar_emulator.auth import AuthSubject, authenticate, get_store, note
from polar_emulator.domain.customer_state import customer_state, emit_state_changed
from polar_emulator.domain.customers import (
    avatar_url,
    find_by_email,
    find_by_external_id,
    live_customer,
    new_customer,
    serialize_customer,
    tax_id_value,
)
from polar_emulator.domain.revocations import revoke_customer_subscriptions
from polar_emulator.domain.store import Store, now
from polar_emulator.domain.subscriptions import has_active_subscription
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import ApiError, not_found, validation_error, validation_item
from polar_emulator.resources.common import (
    AddressInput,
    Email,
    LooseMetadata,
    Resource,
    metadata_matches,
    metadata_query,
    query_bool,
)
from polar_emulator.tokens import new_id

CUSTOMERS = Resource(
    "customers",
    manage=("customers:manage", "manage customers"),
    sortable=("created_at", "email", "name"),
    lookup=live_customer,
)
router = CUSTOMERS.router
READ, WRITE = CUSTOMERS.read, CUSTOMERS.write


class CustomerCreate(BaseModel):
    metadata: LooseMetadata = Field(default_factory=dict)
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
    metadata: LooseMetadata | None = None
    email: Email | None = None
    name: Annotated[str, Field(max_length=256)] | None = None
    billing_address: AddressInput | None = None
    tax_id: str | None = None
    locale: str | None = None


class CustomerUpdate(CustomerUpdateExternalID):
    """The fields of :class:`CustomerUpdateExternalID`, then ``external_id`` and ``type``."""

    external_id: str | None = None
    type: Literal["individual", "team"] | None = None


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


def _by_external_id(
    request: Request, external_id: str, scopes: tuple[str, ...]
) -> tuple[Store, AuthSubject, dict[str, Any]]:
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


def _get(
    request: Request, customer_id: uuid.UUID, scopes: tuple[str, ...]
) -> tuple[Store, AuthSubject, dict[str, Any]]:
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
            value = tax_id_value(value)
        elif key == "metadata" and value is None:
            continue
        customer[key] = value
    if "email" in changes:
        customer["email_verified"] = False
        customer["avatar_url"] = avatar_url(customer["email"])
    customer["modified_at"] = now(store)


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


def _update(store: Store, subject: AuthSubject, customer: dict[str, Any], body: BaseModel) -> dict[str, Any]:
    CUSTOMERS.require(subject, customer["organization_id"])
    _apply_update(store, customer, body.model_dump(exclude_unset=True))
    _emit_updated(store, customer)
    return serialize_customer(customer)


def _delete(store: Store, subject: AuthSubject, customer: dict[str, Any], request: Request) -> Response:
    """Soft delete, as Polar; active subscriptions are revoked first."""
    CUSTOMERS.require(subject, customer["organization_id"])
    revoke_customer_subscriptions(store, customer)
    if (request.query_params.get("anonymize") or "").lower() == "true":
        customer.update(
            email=None if customer["type"] == "team" else f"{new_id()}@anonymized.invalid", name=None
        )
        customer["avatar_url"] = None
    deleted_at = now(store)
    customer["deleted_at"] = deleted_at
    customer["modified_at"] = deleted_at
    emit_event(store, customer["organization_id"], "customer.deleted", serialize_customer(customer))
    return Response(status_code=204)
