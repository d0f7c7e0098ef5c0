"""Webhook control routes under ``/_emulator``: inspect events and deliveries, raise events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.domain.webhooks.models import get_state

router = APIRouter(prefix="/_emulator", tags=["emulator"])


@router.get("/webhook-deliveries")
async def list_deliveries(
    request: Request, endpoint_id: str | None = None, event_id: str | None = None
) -> list[dict[str, Any]]:
    """Every delivery attempt, oldest first, with its event's type and ``webhook-id``."""
    state = get_state(get_store(request))
    return [
        d.to_control(state.events[d.event_id])
        for d in state.deliveries
        if (endpoint_id is None or d.endpoint_id == endpoint_id)
        and (event_id is None or d.event_id == event_id)
    ]


@router.get("/webhook-events")
async def list_events(
    request: Request, endpoint_id: str | None = None, type: str | None = None
) -> list[dict[str, Any]]:
    """Every webhook event (one per endpoint it targets), oldest first."""
    state = get_state(get_store(request))
    return [
        e.to_control()
        for e in state.events.values()
        if (endpoint_id is None or e.endpoint_id == endpoint_id) and (type is None or e.type == type)
    ]


class EventIn(BaseModel):
    organization_id: str
    type: str
    data: dict[str, Any]


@router.post("/webhook-events", status_code=201)
async def raise_event(request: Request, body: EventIn) -> list[dict[str, Any]]:
    """Raise an event as Polar would (e.g. ``subscription.canceled``); returns the events created."""
    events = emit_event(get_store(request), body.organization_id, body.type, body.data)
    return [e.to_control() for e in events]
