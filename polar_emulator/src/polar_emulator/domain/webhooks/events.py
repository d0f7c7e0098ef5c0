"""Raising webhook events. Resource modules call :func:`emit_event`; delivery lives in delivery.py."""

from __future__ import annotations

import json
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.store import Store
from polar_emulator.domain.webhooks.delivery import schedule
from polar_emulator.domain.webhooks.models import WebhookEvent, get_state
from polar_emulator.tokens import new_id

DEFAULT_API_VERSION = "2026-10"


def target_endpoints(store: Store, organization_id: str, event_type: str) -> list[dict[str, Any]]:
    """Enabled, live endpoints of the organization subscribed to ``event_type``."""
    return [
        endpoint
        for endpoint in store.collections["webhook_endpoints"].values()
        if endpoint.get("organization_id") == organization_id
        and endpoint.get("enabled", True)
        and not endpoint.get("deleted_at")
        and event_type in (endpoint.get("events") or [])
    ]


def emit_event(
    store: Store, organization_id: str, event_type: str, data: dict[str, Any]
) -> list[WebhookEvent]:
    """Raise an event of ``event_type`` about ``data`` (the object's API shape) in an organization.

    Synchronous, for request handlers: creates one :class:`WebhookEvent` per target endpoint
    (nothing is kept for disabled endpoints) and schedules its delivery on the running loop.
    """
    store.extra.setdefault("raised_events", []).append(
        {"organization_id": organization_id, "type": event_type, "data": data}
    )
    endpoints = target_endpoints(store, organization_id, event_type)
    if not endpoints:
        return []
    state = get_state(store)
    now = isoformat(store.clock.now())
    created: list[WebhookEvent] = []
    for endpoint in endpoints:
        api_version = endpoint.get("api_version") or DEFAULT_API_VERSION
        payload = json.dumps(
            {"type": event_type, "timestamp": now, "api_version": api_version, "data": data},
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        event = WebhookEvent(
            id=new_id(),
            created_at=now,
            endpoint_id=endpoint["id"],
            organization_id=organization_id,
            type=event_type,
            api_version=api_version,
            payload=payload,
        )
        state.events[event.id] = event
        created.append(event)
    for event in created:
        schedule(store, event)
    return created
