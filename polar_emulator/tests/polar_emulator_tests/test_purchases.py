"""Simulated purchases: objects created, events raised in Polar's order, payloads that validate."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from polar.v2026_10 import webhooks as sdk_webhooks
from polar.webhooks import PolarWebhookError

from polar_emulator import EmulatorServer
from polar_emulator.clock import isoformat
from polar_emulator.tokens import generate_token, new_id
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_webhook_payload, purchase, raised
from polar_emulator_tests.resource_helpers import call
from polar_emulator_tests.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

RECURRING_ORDER = [
    "customer.created",
    "checkout.created",
    "checkout.updated",
    "order.created",
    "order.paid",
    "subscription.created",
    "subscription.active",
    "benefit_grant.created",
    "benefit_grant.created",
    "customer.state_changed",
]


def test_recurring_purchase_events_and_shapes(
    control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    before = len(raised(emulator))
    bought = purchase(control, org, catalog["monthly"]["id"], "user_1")
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == RECURRING_ORDER
    assert all(e["organization_id"] == org for e in events)
    for event in events:
        # state_changed carries an active subscription, which polar-sdk 1.0.2 cannot load.
        check_webhook_payload(event["type"], event["data"], sdk=event["type"] != "customer.state_changed")
    data = {e["type"]: e["data"] for e in events}
    assert (
        data["customer.created"]["external_id"] == "user_1"
        and data["customer.created"]["id"] == bought["customer_id"]
    )
    assert data["checkout.created"]["status"] == "open" and data["checkout.updated"]["status"] == "succeeded"
    assert data["checkout.updated"]["id"] == bought["checkout_id"]
    assert data["order.created"]["status"] == "pending" and data["order.paid"]["status"] == "paid"
    assert (
        data["order.paid"]["paid"] is True and data["order.paid"]["billing_reason"] == "subscription_create"
    )
    assert (
        data["order.paid"]["subscription_id"] == bought["subscription_id"]
        and data["order.paid"]["total_amount"] == 1500
    )
    assert (
        data["subscription.active"]["status"] == "active"
        and data["subscription.active"]["id"] == bought["subscription_id"]
    )
    grants = [e["data"] for e in events if e["type"] == "benefit_grant.created"]
    assert [g["benefit"]["id"] for g in grants] == [catalog["support"]["id"], catalog["flag"]["id"]]
    assert [g["id"] for g in grants] == bought["benefit_grant_ids"]
    assert all(g["is_granted"] and g["subscription_id"] == bought["subscription_id"] for g in grants)
    state = data["customer.state_changed"]
    assert [s["id"] for s in state["active_subscriptions"]] == [bought["subscription_id"]]
    assert len(state["granted_benefits"]) == 2


def test_second_purchase_reuses_the_customer_and_one_time_has_no_subscription(
    control: httpx.Client, api: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    first = purchase(control, org, catalog["monthly"]["id"], "user_1")
    before = len(raised(emulator))
    second = purchase(control, org, catalog["one_time"]["id"], "user_1")
    assert second["customer_id"] == first["customer_id"] and second["customer_created"] is False
    assert second["subscription_id"] is None and second["benefit_grant_ids"] == []
    types = [e["type"] for e in raised(emulator)[before:]]
    assert types == [
        "checkout.created",
        "checkout.updated",
        "order.created",
        "order.paid",
        "customer.state_changed",
    ]
    order = raised(emulator)[before + 3]["data"]
    assert (
        order["billing_reason"] == "purchase"
        and order["subscription"] is None
        and order["total_amount"] == 9900
    )
    checkout = call(api, "GET", "/v1/checkouts/{id}", 200, path=f"/v1/checkouts/{second['checkout_id']}")
    assert checkout["status"] == "succeeded" and checkout["customer_id"] == first["customer_id"]


def test_control_route_errors(control: httpx.Client, org: str, catalog: dict[str, Any]) -> None:
    unknown = control.post(
        "/_emulator/simulate/purchase",
        json={
            "organization_id": org,
            "product_id": "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11",
            "external_customer_id": "u",
        },
    )
    assert unknown.status_code == 404
    bad_org = control.post(
        "/_emulator/simulate/purchase",
        json={"organization_id": "nope", "product_id": catalog["monthly"]["id"], "external_customer_id": "u"},
    )
    assert bad_org.status_code == 422


def _endpoint(emulator: EmulatorServer, organization_id: str, url: str, events: list[str]) -> dict[str, Any]:
    """A webhook endpoint in Polar's API shape, put straight into the store."""
    endpoint = {
        "id": new_id(),
        "created_at": isoformat(emulator.store.clock.now()),
        "modified_at": None,
        "organization_id": organization_id,
        "url": url,
        "name": None,
        "secret": generate_token("whsec_"),
        "events": sorted(set(events)),
        "enabled": True,
        "format": "raw",
        "api_version": "2026-10",
        "uses_standard_webhook_signature": False,
    }
    emulator.store.collections["webhook_endpoints"][endpoint["id"]] = endpoint
    return endpoint


def test_delivered_payloads_pass_validate_event(
    control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    receiver = Receiver().start()
    try:
        endpoint = _endpoint(emulator, org, receiver.url, RECURRING_ORDER)
        purchase(control, org, catalog["monthly"]["id"], "user_1")
        wait_for(lambda: len(receiver.received) >= len(RECURRING_ORDER), what="purchase webhooks")
    finally:
        receiver.stop()
    types = sorted(json.loads(r.body)["type"] for r in receiver.received)
    assert types == sorted(RECURRING_ORDER)
    for received in receiver.received:
        event_type = json.loads(received.body)["type"]
        if event_type == "customer.state_changed":
            # polar-sdk 1.0.2 bug: CustomerStateSubscription.status is typed "granted"|"disabled".
            with pytest.raises(PolarWebhookError):
                sdk_webhooks.validate_event(received.body, received.headers, endpoint["secret"])
            continue
        payload = sdk_webhooks.validate_event(received.body, received.headers, endpoint["secret"])
        assert payload.type == event_type
