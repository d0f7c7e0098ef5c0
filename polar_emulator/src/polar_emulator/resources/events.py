"""Usage events: ``POST /v1/events/ingest``.

Events are kept as ``domain/events.py`` says. Ingest dedupes on ``(organization_id, external_id)``
as Polar's ``ON CONFLICT DO NOTHING`` does, and validates the whole batch before inserting anything.
The customers' meters (``/v1/customer-meters/``, customer state) follow at once, and a customer
whose meters changed gets one ``customer.state_changed``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request

from polar_emulator.auth import AuthSubject, authenticate, get_store, note
from polar_emulator.clock import isoformat
from polar_emulator.domain.customer_meters import refresh as refresh_customer_meters
from polar_emulator.domain.customer_state import emit_state_changed
from polar_emulator.domain.customers import customers_of, find_by_external_id
from polar_emulator.domain.events import events_of
from polar_emulator.domain.store import Store
from polar_emulator.errors import validation_error, validation_item
from polar_emulator.tokens import new_id

router = APIRouter(prefix="/v1/events", tags=["events"])

SCOPES = ("events:write",)


class _EventBase(BaseModel):
    timestamp: datetime | None = None
    name: Annotated[str, Field(max_length=128)]
    organization_id: uuid.UUID | None = None
    external_id: str | None = None
    parent_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class EventCreateCustomer(_EventBase):
    customer_id: uuid.UUID
    member_id: uuid.UUID | None = None


class EventCreateExternalCustomer(_EventBase):
    external_customer_id: str
    external_member_id: str | None = None


class EventsIngest(BaseModel):
    events: list[EventCreateCustomer | EventCreateExternalCustomer]


def _event_organization(subject: AuthSubject, event: _EventBase, index: int) -> str | dict[str, Any]:
    """Polar's get_payload_organization, per event: the organization id, or the validation error."""
    reachable = subject.organization_ids()
    loc: list[str | int] = ["body", "events", index, "organization_id"]
    if event.organization_id is None:
        if subject.token.organization_ids and len(reachable) == 1:
            return reachable[0]
        return validation_item(loc, "organization_id is required.", "missing", None)
    if str(event.organization_id) not in reachable:
        return validation_item(loc, "Organization not found.", "value_error", str(event.organization_id))
    return str(event.organization_id)


@router.post("/ingest")
async def ingest(request: Request, body: EventsIngest) -> dict[str, int]:
    subject = authenticate(request, SCOPES)
    store = get_store(request)
    customers = customers_of(store)
    errors: list[dict] = []
    rows: list[dict[str, Any]] = []
    # Validate everything first: one bad event rejects the batch and nothing is inserted.
    for i, event in enumerate(body.events):
        organization_id = _event_organization(subject, event, i)
        if isinstance(organization_id, dict):
            errors.append(organization_id)
            continue
        if not subject.can(organization_id, "events:ingest"):
            errors.append(
                validation_item(
                    ["body", "events", i, "organization_id"],
                    "Organization not found.",
                    "value_error",
                    organization_id,
                )
            )
            continue
        row: dict[str, Any] = {
            "id": new_id(),
            "timestamp": isoformat(event.timestamp or store.clock.now()),
            "organization_id": organization_id,
            "customer_id": None,
            "external_customer_id": None,
            "member_id": None,
            "external_member_id": None,
            "child_count": 0,
            "parent_id": event.parent_id,
            "label": event.name,
            "name": event.name,
            "source": "user",
            "metadata": event.metadata,
            "external_id": event.external_id,
        }
        if isinstance(event, EventCreateCustomer):
            customer = customers.get(str(event.customer_id))
            if customer is None or customer["deleted_at"] or customer["organization_id"] != organization_id:
                errors.append(
                    validation_item(
                        ["body", "events", i, "customer_id"],
                        "Customer not found.",
                        "value_error",
                        str(event.customer_id),
                    )
                )
                continue
            row["customer_id"] = customer["id"]
            row["member_id"] = str(event.member_id) if event.member_id else None
        else:
            # Polar keeps events of customers it does not know yet; they attach when the customer appears.
            row["external_customer_id"] = event.external_customer_id
            row["external_member_id"] = event.external_member_id
        rows.append(row)
    if errors:
        raise validation_error(*errors)
    if len({r["organization_id"] for r in rows}) == 1:
        note(request, organization_id=rows[0]["organization_id"])

    events = events_of(store)
    seen = {(e["organization_id"], e["external_id"]) for e in events.values() if e["external_id"] is not None}
    inserted = 0
    touched: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = (row["organization_id"], row["external_id"])
        if row["external_id"] is not None:
            if key in seen:
                continue
            seen.add(key)
        events[row["id"]] = row
        inserted += 1
        customer = _event_customer(store, row)
        if customer is not None:
            touched[customer["id"]] = customer
            if customer["first_user_event_at"] is None:
                customer["first_user_event_at"] = row["timestamp"]
    # Polar updates the customer's meters from a job debounced 15 s (here: at once) and sends
    # customer.state_changed when one of them changed.
    for customer in touched.values():
        if refresh_customer_meters(store, customer):
            emit_state_changed(store, customer)
    return {"inserted": inserted, "duplicates": len(rows) - inserted}


def _event_customer(store: Store, event: dict[str, Any]) -> dict[str, Any] | None:
    customer = customers_of(store).get(event["customer_id"] or "")
    if customer is None and event["external_customer_id"] is not None:
        found = find_by_external_id(store, {event["organization_id"]}, event["external_customer_id"])
        customer = found[0] if found else None
    return customer
