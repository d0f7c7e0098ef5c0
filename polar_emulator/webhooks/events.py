"""Raising webhook events. Resource modules call :func:`emit_event`; delivery lives in delivery.py."""

from __future__ import annotations

from typing import Any

from polar_emulator.store import Store


def emit_event(store: Store, organization_id: str, event_type: str, data: dict[str, Any]) -> None:
    """Record an event of ``event_type`` about ``data`` (the object's API shape) in an organization.

    Called synchronously from request handlers; delivery to subscribed endpoints happens later
    on the event loop. Until delivery is wired in, events are only recorded.
    """
    store.extra.setdefault("raised_events", []).append(
        {"organization_id": organization_id, "type": event_type, "data": data}
    )
