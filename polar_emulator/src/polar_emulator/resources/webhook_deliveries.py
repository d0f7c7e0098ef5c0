"""Polar's webhook delivery log and redelivery: ``GET /v1/webhooks/deliveries``, ``POST .../redeliver``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, note
from polar_emulator.domain.webhooks.delivery import schedule
from polar_emulator.domain.webhooks.models import get_state
from polar_emulator.errors import not_found
from polar_emulator.pagination import paginate

router = APIRouter(tags=["webhooks"])

READ_SCOPES = ("webhooks:read", "webhooks:write")


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@router.get("/v1/webhooks/deliveries")
async def list_webhook_deliveries(
    request: Request,
    endpoint_id: list[UUID] | None = Query(None),
    start_timestamp: datetime | None = None,
    end_timestamp: datetime | None = None,
    succeeded: bool | None = None,
    query: str | None = None,
    http_code_class: Literal["2xx", "3xx", "4xx", "5xx"] | None = None,
    event_type: list[str] | None = Query(None),
) -> dict[str, Any]:
    """Delivery attempts to the endpoints of organizations the caller manages, newest first."""
    subject = authenticate(request, READ_SCOPES)
    orgs = {oid for oid in subject.organization_ids() if subject.can(oid, "organization:manage")}
    state = get_state(get_store(request))
    endpoints = {str(e) for e in endpoint_id} if endpoint_id else None
    types = set(event_type) if event_type else None
    code_class = int(http_code_class[0]) if http_code_class else None
    items = []
    for delivery in reversed(state.deliveries):
        event = state.events[delivery.event_id]
        if event.organization_id not in orgs:
            continue
        if endpoints is not None and delivery.endpoint_id not in endpoints:
            continue
        if succeeded is not None and delivery.succeeded != succeeded:
            continue
        if types is not None and event.type not in types:
            continue
        if code_class is not None and (delivery.http_code is None or delivery.http_code // 100 != code_class):
            continue
        created = datetime.fromisoformat(delivery.created_at)
        if start_timestamp is not None and created < _aware(start_timestamp):
            continue
        if end_timestamp is not None and created > _aware(end_timestamp):
            continue
        if query and query.lower() not in f"{event.payload or ''} {delivery.response or ''}".lower():
            continue
        items.append(delivery.to_api(event))
    return paginate(request, items)


@router.post("/v1/webhooks/events/{id}/redeliver", status_code=202)
async def redeliver_webhook_event(request: Request, id: UUID) -> None:
    """Schedule another delivery of an event, even one that already succeeded."""
    subject = authenticate(request, ("webhooks:write",))
    store = get_store(request)
    event = get_state(store).events.get(str(id))
    if event is None or event.organization_id not in subject.organization_ids():
        raise not_found()
    note(request, organization_id=event.organization_id)
    subject.require(event.organization_id, "organization:manage", "manage this organization")
    if not event.is_archived:
        schedule(store, event, redeliver=True)
    return None
