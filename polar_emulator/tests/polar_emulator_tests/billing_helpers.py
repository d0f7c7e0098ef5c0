"""Fixtures and helpers for the customer, checkout, subscription and event tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from polar.base import deserialize
from polar.v2026_10 import Polar
from polar.v2026_10 import webhooks as sdk_webhooks
from standardwebhooks.webhooks import Webhook as StandardWebhook

from polar_emulator import EmulatorServer
from polar_emulator_tests.resource_helpers import call, fixed_price, http, org_id, sdk
from polar_emulator_tests.spec import spec, validate_schema


@pytest.fixture(name="org")
def org_fixture(emulator: EmulatorServer) -> str:
    return org_id(emulator, "demo-org")


@pytest.fixture(name="token")
def token_fixture(issue_token: Any, org: str) -> str:
    return issue_token("demo@polar.local", organization_ids=[org])


@pytest.fixture(name="api")
def api_fixture(emulator: EmulatorServer, token: str) -> Iterator[httpx.Client]:
    with http(emulator, token) as client:
        yield client


@pytest.fixture(name="polar")
def polar_fixture(emulator: EmulatorServer, token: str) -> Iterator[Polar]:
    with sdk(emulator, token) as client:
        yield client


@pytest.fixture(name="catalog")
def catalog_fixture(api: httpx.Client, org: str) -> dict[str, Any]:
    """Two benefits, a monthly product granting both and a one-time product, made through the API."""
    support = call(
        api,
        "POST",
        "/v1/benefits/",
        201,
        json={
            "type": "custom",
            "description": "Priority support",
            "properties": {"note": "hi"},
            "organization_id": org,
        },
    )
    flag = call(
        api,
        "POST",
        "/v1/benefits/",
        201,
        json={
            "type": "feature_flag",
            "description": "Pro features",
            "properties": {},
            "organization_id": org,
        },
    )
    monthly = call(
        api,
        "POST",
        "/v1/products/",
        201,
        json={
            "name": "Pro",
            "recurring_interval": "month",
            "prices": [fixed_price(1500)],
            "organization_id": org,
        },
    )
    monthly = call(
        api,
        "POST",
        "/v1/products/{id}/benefits",
        200,
        path=f"/v1/products/{monthly['id']}/benefits",
        json={"benefits": [support["id"], flag["id"]]},
    )
    one_time = call(
        api,
        "POST",
        "/v1/products/",
        201,
        json={
            "name": "Lifetime",
            "recurring_interval": None,
            "prices": [fixed_price(9900)],
            "organization_id": org,
        },
    )
    return {"support": support, "flag": flag, "monthly": monthly, "one_time": one_time}


# The fixtures are named ``org``, ``token``, ``api``, ``polar`` and ``catalog``; a test module
# binds these to module names so pytest finds them.
FIXTURES = (api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture)


def create_customer(
    api: httpx.Client,
    org: str,
    email: str = "a@example.com",
    external_id: str | None = "u1",
    *,
    status: int = 201,
) -> dict[str, Any]:
    """``POST /v1/customers/`` (answer checked against the spec); ``external_id=None`` sends none."""
    body = {"email": email, "external_id": external_id, "organization_id": org}
    if external_id is None:
        del body["external_id"]
    return call(api, "POST", "/v1/customers/", status, json=body)


def purchase(control: httpx.Client, org: str, product_id: str, external_customer_id: str) -> dict[str, Any]:
    response = control.post(
        "/_emulator/simulate/purchase",
        json={"organization_id": org, "product_id": product_id, "external_customer_id": external_customer_id},
    )
    assert response.status_code == 201, response.text
    return response.json()


def raised(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return list(emulator.store.extra.get("raised_events", []))


def payload_class_name(event_type: str) -> str:
    """``benefit_grant.created`` -> ``WebhookBenefitGrantCreatedPayload`` (spec and SDK agree)."""
    words = event_type.replace(".", "_").split("_")
    return "Webhook" + "".join(w.capitalize() for w in words) + "Payload"


def check_webhook_payload(event_type: str, data: dict[str, Any], *, sdk: bool = True) -> Any:
    """Validate ``data`` wrapped as the delivered payload against the spec and load it with the SDK.

    ``sdk=False`` skips the SDK for a ``CustomerState`` with active subscriptions, which
    polar-sdk 1.0.2 cannot load (see test_customers); the payload dict is returned then.
    """
    payload = {
        "type": event_type,
        "timestamp": "2026-11-23T18:00:00+00:00",
        "api_version": "2026-10",
        "data": data,
    }
    ref = spec()["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "$ref"
    ]
    assert ref.endswith(payload_class_name(event_type)), ref
    validate_schema(ref.rsplit("/", 1)[1], payload)
    if not sdk:
        return payload
    return deserialize(payload, getattr(sdk_webhooks, payload_class_name(event_type)))


def check_events(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Validate every raised event's payload against the spec and load it with polar-sdk 1.0.2
    (``customer.state_changed`` is read as JSON: the SDK's ``CustomerStateSubscription.status``
    bug, see test_customers); returns the data of each type, in order."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        check_webhook_payload(event["type"], event["data"], sdk=event["type"] != "customer.state_changed")
        by_type.setdefault(event["type"], []).append(event["data"])
    return by_type


def new_checkout(api: httpx.Client, product_ids: list[str], **body: Any) -> dict[str, Any]:
    """``POST /v1/checkouts/`` (answer checked against the spec)."""
    return call(api, "POST", "/v1/checkouts/", 201, json={"products": product_ids, **body})


def pay(control: httpx.Client, checkout: dict[str, Any], *, status: int = 303, **form: str) -> httpx.Response:
    """Press *Pay* on the checkout's hosted page (a form POST to its ``url``)."""
    response = control.post(checkout["url"], data=form, follow_redirects=False)
    assert response.status_code == status, response.text
    return response


def webhook_endpoint(api: httpx.Client, org: str, url: str, events: list[str]) -> dict[str, Any]:
    """A webhook endpoint made through Polar's API, subscribed to ``events``."""
    body = {"url": url, "format": "raw", "events": sorted(set(events)), "organization_id": org}
    return call(api, "POST", "/v1/webhooks/endpoints", 201, json=body)


def check_deliveries(received: list[Any], secret: str) -> list[str]:
    """Verify every delivery's signature and payload with polar-sdk's ``validate_event`` (the
    ``customer.state_changed`` payloads, which polar-sdk 1.0.2 cannot load when a subscription is
    active, are verified with standardwebhooks and read as JSON); returns the types received."""
    types = []
    for delivery in received:
        payload = json.loads(delivery.body)
        types.append(payload["type"])
        if payload["type"] == "customer.state_changed":
            secret_b64 = base64.b64encode(secret.encode()).decode()
            StandardWebhook(secret_b64).verify(delivery.body, delivery.headers)
            check_webhook_payload(payload["type"], payload["data"], sdk=False)
            continue
        loaded = sdk_webhooks.validate_event(delivery.body, delivery.headers, secret)
        assert loaded.type == payload["type"]
    return types
