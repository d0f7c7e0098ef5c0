"""Fixtures for the webhook tests: a live receiver and webhook endpoints in the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from polar_emulator import EmulatorServer
from polar_emulator.tokens import new_id
from polar_emulator_tests.conftest import IssueToken
from polar_emulator_tests.webhook_receiver import Receiver, wait_for

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
def owner_tokens(emulator: EmulatorServer, issue_token: IssueToken) -> dict[str, str]:
    """An owner's access token (webhooks:read/write) for each seeded organization id."""
    tokens: dict[str, str] = {}
    for user in list(emulator.store.users.values()):
        token = issue_token(user.email, scope="webhooks:read webhooks:write")
        for org_id in emulator.store.user_organization_ids(user.id):
            tokens[org_id] = token
    return tokens


@pytest.fixture
def make_endpoint(control: httpx.Client, owner_tokens: dict[str, str]) -> MakeEndpoint:
    """Create a webhook endpoint through Polar's API (``POST /v1/webhooks/endpoints``).

    ``enabled=False`` is applied with a PATCH afterwards; returns the endpoint as the API shows it.
    """

    def make(organization_id: str, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {owner_tokens[organization_id]}", "Polar-Version": "2026-10"}
        enabled = fields.pop("enabled", True)
        body = {"url": url, "format": "raw", "events": events, "organization_id": organization_id, **fields}
        response = control.post("/v1/webhooks/endpoints", json=body, headers=auth)
        assert response.status_code == 201, response.text
        endpoint = response.json()
        if not enabled:
            endpoint = set_enabled(control, owner_tokens, endpoint, False)
        return endpoint

    return make


def set_enabled(
    control: httpx.Client, owner_tokens: dict[str, str], endpoint: dict[str, Any], enabled: bool
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {owner_tokens[endpoint['organization_id']]}"}
    response = control.patch(
        f"/v1/webhooks/endpoints/{endpoint['id']}", json={"enabled": enabled}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()


def get_endpoint(
    control: httpx.Client, owner_tokens: dict[str, str], endpoint: dict[str, Any]
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {owner_tokens[endpoint['organization_id']]}"}
    response = control.get(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


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


@dataclass
class Hooks:
    """What a webhook test works with, bundled: the control client, a live receiver, endpoint
    creation, the seeded organizations and their owners' tokens; ``org`` is demo-org."""

    control: httpx.Client
    receiver: Receiver
    make_endpoint: MakeEndpoint
    org_ids: dict[str, str]
    owner_tokens: dict[str, str]

    @property
    def org(self) -> str:
        return self.org_ids["demo-org"]

    def endpoint(self, events: list[str], **fields: Any) -> dict[str, Any]:
        """An endpoint of demo-org that delivers ``events`` to the receiver."""
        return self.make_endpoint(self.org, self.receiver.url, events, **fields)

    def emit(self, event_type: str = "member.created", data: dict[str, Any] | None = None) -> list[dict]:
        """Raise a demo-org event (a fresh member by default); returns the webhook events created."""
        return emit(self.control, self.org, event_type, member_data() if data is None else data)

    def deliver(self, event_type: str = "member.created", data: dict[str, Any] | None = None) -> dict:
        """Raise one demo-org event and wait until it is done; returns the webhook event raised."""
        [event] = self.emit(event_type, data)
        wait_event_done(self.control, event["id"])
        return event

    def set_enabled(self, endpoint: dict[str, Any], enabled: bool) -> dict[str, Any]:
        return set_enabled(self.control, self.owner_tokens, endpoint, enabled)

    def get_endpoint(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        return get_endpoint(self.control, self.owner_tokens, endpoint)


@pytest.fixture
def hooks(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> Hooks:
    return Hooks(control, receiver, make_endpoint, org_ids, owner_tokens)


# A webhook test module binds these to module names so pytest finds them.
FIXTURES = (receiver, make_endpoint, org_ids, owner_tokens, hooks)
