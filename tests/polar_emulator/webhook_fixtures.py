"""Fixtures for the webhook tests: a live receiver and webhook endpoints in the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from polar_emulator import EmulatorServer
from polar_emulator.clock import isoformat
from polar_emulator.tokens import generate_token, new_id
from tests.polar_emulator.webhook_receiver import Receiver, wait_for

MakeEndpoint = Callable[..., dict[str, Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def org_ids(emulator: EmulatorServer) -> dict[str, str]:
    """Seeded organizations by slug."""
    return {org["slug"]: org["id"] for org in emulator.store.organizations.values()}


@pytest.fixture
def make_endpoint(emulator: EmulatorServer) -> MakeEndpoint:
    """Put a webhook endpoint (Polar's API shape) straight into the emulator's store."""

    def make(organization_id: str, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        now = isoformat(emulator.store.clock.now())
        endpoint = {
            "id": new_id(),
            "created_at": now,
            "modified_at": None,
            "organization_id": organization_id,
            "url": url,
            "name": None,
            "secret": generate_token("whsec_"),
            "events": list(events),
            "enabled": True,
            "format": "raw",
            "api_version": "2026-10",
            "uses_standard_webhook_signature": False,
        }
        endpoint.update(fields)
        emulator.store.collections["webhook_endpoints"][endpoint["id"]] = endpoint
        return endpoint

    return make


def emit(control: httpx.Client, organization_id: str, event_type: str, data: dict[str, Any]) -> list[dict]:
    """Raise an event through the control API; returns the webhook events created."""
    response = control.post(
        "/_emulator/webhook-events",
        json={"organization_id": organization_id, "type": event_type, "data": data},
    )
    response.raise_for_status()
    return response.json()


def deliveries(control: httpx.Client, **params: str) -> list[dict[str, Any]]:
    return control.get("/_emulator/webhook-deliveries", params=params).json()


def events(control: httpx.Client, **params: str) -> list[dict[str, Any]]:
    return control.get("/_emulator/webhook-events", params=params).json()


def wait_event_done(control: httpx.Client, event_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the event succeeded or finally failed (or was skipped)."""

    def done() -> dict[str, Any] | None:
        found = [e for e in events(control) if e["id"] == event_id]
        assert found, event_id
        e = found[0]
        return e if e["succeeded"] is not None or e["skipped"] else None

    return wait_for(done, timeout, what=f"event {event_id} to finish")  # type: ignore[return-value]


def member_data(**overrides: Any) -> dict[str, Any]:
    """A valid ``Member`` object (the data of ``member.*`` events) in its API shape."""
    data = {
        "id": new_id(),
        "created_at": "2026-11-23T18:00:00.000000+00:00",
        "modified_at": None,
        "customer_id": new_id(),
        "email": "member@example.com",
        "name": "Jane Doe",
        "external_id": None,
        "role": "owner",
    }
    data.update(overrides)
    return data
