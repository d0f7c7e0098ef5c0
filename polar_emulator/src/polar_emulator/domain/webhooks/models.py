"""Webhook events and deliveries kept by the emulator, and their API shapes."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from polar_emulator.domain.store import Store

STATE_KEY = "webhooks"
_sequence = itertools.count()


@dataclass
class WebhookEvent:
    """One event for one endpoint; its id is the ``webhook-id`` of every delivery."""

    id: str
    created_at: str
    endpoint_id: str
    organization_id: str
    type: str
    api_version: str
    payload: str | None
    modified_at: str | None = None
    last_http_code: int | None = None
    succeeded: bool | None = None
    skipped: bool = False
    is_archived: bool = False
    delivery_count: int = 0
    seq: int = field(default_factory=lambda: next(_sequence))

    def to_api(self) -> dict[str, Any]:
        """Polar's ``WebhookEvent`` (with the SDK's ``api_version``)."""
        return {
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "id": self.id,
            "last_http_code": self.last_http_code,
            "succeeded": self.succeeded,
            "skipped": self.skipped,
            "api_version": self.api_version,
            "payload": self.payload,
            "type": self.type,
            "is_archived": self.is_archived,
        }

    def to_control(self) -> dict[str, Any]:
        return {
            **self.to_api(),
            "endpoint_id": self.endpoint_id,
            "organization_id": self.organization_id,
            "delivery_count": self.delivery_count,
        }


@dataclass
class WebhookDelivery:
    """One HTTP attempt to deliver an event."""

    id: str
    created_at: str
    event_id: str
    endpoint_id: str
    attempt: int
    webhook_timestamp: int
    http_code: int | None
    response: str | None
    error: str | None
    succeeded: bool
    duration_ms: float
    redelivery: bool = False

    def to_api(self, event: WebhookEvent) -> dict[str, Any]:
        """Polar's ``WebhookDelivery`` with its nested ``webhook_event``."""
        return {
            "created_at": self.created_at,
            "modified_at": None,
            "id": self.id,
            "succeeded": self.succeeded,
            "http_code": self.http_code,
            "response": self.response,
            "webhook_event": event.to_api(),
        }

    def to_control(self, event: WebhookEvent) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "event_id": self.event_id,
            "webhook_id": self.event_id,
            "endpoint_id": self.endpoint_id,
            "organization_id": event.organization_id,
            "type": event.type,
            "attempt": self.attempt,
            "redelivery": self.redelivery,
            "webhook_timestamp": self.webhook_timestamp,
            "http_code": self.http_code,
            "error": self.error,
            "response": self.response,
            "succeeded": self.succeeded,
            "duration_ms": self.duration_ms,
        }


@dataclass
class WebhookState:
    """All webhook events, deliveries and running delivery tasks of one store generation."""

    events: dict[str, WebhookEvent] = field(default_factory=dict)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closed: bool = False

    def close(self) -> None:
        """Stop every delivery task (the store was reset)."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        self.tasks.clear()


def get_state(store: Store) -> WebhookState:
    """This store generation's webhook state, created (with its reset hook) on first use."""
    state = store.extra.get(STATE_KEY)
    if isinstance(state, WebhookState):
        return state
    state = WebhookState()
    store.extra[STATE_KEY] = state
    previous = store.extra.get("on_reset")

    def on_reset() -> None:
        state.close()
        if callable(previous):
            previous()

    store.extra["on_reset"] = on_reset
    return state


def is_current(store: Store, state: WebhookState) -> bool:
    """False once the store was reset after ``state`` was made."""
    return not state.closed and store.extra.get(STATE_KEY) is state
