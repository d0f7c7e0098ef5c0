"""The control API's billing lifecycle: renew, past due and recovery, cancel, refund, each with
Polar's events in Polar's order (NOTES 10.3-10.5), payloads checked against the spec and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from polar.v2026_10 import Polar

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import (
    check_deliveries,
    check_events,
    purchase,
    raised,
    webhook_endpoint,
)
from polar_emulator_tests.resource_helpers import call
from polar_emulator_tests.spec import validate_schema
from polar_emulator_tests.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

RENEWAL = [
    "subscription.cycled",
    "subscription.updated",
    "order.created",
    "order.updated",
    "order.paid",
    "benefit_grant.cycled",
    "benefit_grant.cycled",
    "customer.state_changed",
]
PAST_DUE = [
    "subscription.cycled",
    "subscription.updated",
    "order.created",
    "subscription.updated",
    "subscription.past_due",
    "benefit_grant.revoked",
    "benefit_grant.revoked",
    "customer.state_changed",
]


def _post(control: httpx.Client, path: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = control.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def _renew(control: httpx.Client, sub_id: str, status: int = 200, **body: Any) -> dict[str, Any]:
    return _post(control, f"/_emulator/subscriptions/{sub_id}/renew", status, **body)


def _check_answer(answer: dict[str, Any]) -> None:
    validate_schema("Subscription", answer["subscription"])
    if answer["order"] is not None:
        validate_schema("Order", answer["order"])


def test_renewal(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    first = polar.subscriptions.get(bought["subscription_id"])
    before = len(raised(emulator))
    answer = _renew(control, bought["subscription_id"])
    _check_answer(answer)
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == RENEWAL == answer["events"]
    data = check_events(events)
    cycled = data["subscription.cycled"][0]
    assert cycled["current_period_start"] == first.current_period_end
    assert datetime.fromisoformat(cycled["current_period_end"]) > datetime.fromisoformat(
        first.current_period_end
    )
    created, paid = data["order.created"][0], data["order.paid"][0]
    assert created["status"] == "pending" and paid["status"] == "paid" and paid["paid"] is True
    assert paid["billing_reason"] == "subscription_cycle" and paid["total_amount"] == 1500
    assert paid["items"][0]["start_timestamp"] == cycled["current_period_start"]
    assert {g["id"] for g in data["benefit_grant.cycled"]} == set(bought["benefit_grant_ids"])
    # Through the SDK: the new period, and both orders.
    sub = polar.subscriptions.get(bought["subscription_id"])
    assert sub.current_period_start == first.current_period_end and sub.status == "active"
    orders = polar.orders.list(subscription_id=sub.id, sorting=["created_at"]).items
    assert [o.billing_reason for o in orders] == ["subscription_create", "subscription_cycle"]
    assert answer["order"]["id"] == orders[1].id


def test_past_due_drops_out_of_the_state_and_recovers(
    polar: Polar,
    api: httpx.Client,
    control: httpx.Client,
    org: str,
    catalog: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    answer = _post(control, f"/_emulator/subscriptions/{bought['subscription_id']}/past-due")
    _check_answer(answer)
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == PAST_DUE
    data = check_events(events)
    assert data["subscription.past_due"][0]["status"] == "past_due"
    assert data["subscription.past_due"][0]["past_due_at"] is not None
    [state] = data["customer.state_changed"]
    assert state["active_subscriptions"] == [] and state["granted_benefits"] == []
    order = answer["order"]
    assert order["status"] == "pending" and order["next_payment_attempt_at"] is not None
    assert polar.subscriptions.get(bought["subscription_id"]).status == "past_due"
    # The state read through the API agrees; with no active subscription polar-sdk can load it.
    assert polar.customers.get_state_external("u1").active_subscriptions == []
    assert polar.orders.list(status="pending").items[0].id == order["id"]
    again = _post(control, f"/_emulator/subscriptions/{bought['subscription_id']}/past-due", 409)
    assert again["error"] == "SubscriptionNotRenewable"

    # The payment retry succeeds: active again, the order paid, the same grants granted again.
    before = len(raised(emulator))
    answer = _renew(control, bought["subscription_id"])
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.active",
        "order.updated",
        "order.paid",
        "benefit_grant.created",
        "benefit_grant.created",
        "customer.state_changed",
    ]
    data = check_events(events)
    assert (
        data["order.paid"][0]["id"] == order["id"]
        and data["order.paid"][0]["next_payment_attempt_at"] is None
    )
    assert sorted(g["id"] for g in data["benefit_grant.created"]) == sorted(bought["benefit_grant_ids"])
    assert answer["subscription"]["status"] == "active" and answer["subscription"]["past_due_at"] is None
    [state] = data["customer.state_changed"]
    assert len(state["active_subscriptions"]) == 1 and len(state["granted_benefits"]) == 2


def test_revoking_a_past_due_subscription_voids_its_order(
    control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    _post(control, f"/_emulator/subscriptions/{bought['subscription_id']}/past-due")
    before = len(raised(emulator))
    answer = _post(
        control, f"/_emulator/subscriptions/{bought['subscription_id']}/cancel", at_period_end=False
    )
    events = raised(emulator)[before:]
    assert (
        [e["type"] for e in events]
        == answer["events"]
        == [
            "subscription.updated",
            "subscription.canceled",
            "subscription.revoked",
            "order.updated",
            "customer.state_changed",
        ]
    )
    data = check_events(events)
    assert data["order.updated"][0]["status"] == "void" and answer["order"]["status"] == "void"
    assert answer["subscription"]["status"] == "canceled"
    assert _renew(control, bought["subscription_id"], 409)["error"] == "SubscriptionNotRenewable"


def test_cancel_then_the_period_ends(
    control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    sub_id = bought["subscription_id"]
    before = len(raised(emulator))
    answer = _post(control, f"/_emulator/subscriptions/{sub_id}/cancel", reason="switched_service")
    assert answer["events"] == ["subscription.updated", "subscription.canceled", "customer.state_changed"]
    check_events(raised(emulator)[before:])
    sub = answer["subscription"]
    assert sub["cancel_at_period_end"] and sub["customer_cancellation_reason"] == "switched_service"
    assert _post(control, f"/_emulator/subscriptions/{sub_id}/cancel", 403)["error"] == (
        "AlreadyCanceledSubscription"
    )

    before = len(raised(emulator))
    answer = _renew(control, sub_id)
    _check_answer(answer)
    events = raised(emulator)[before:]
    # subscription.canceled comes a second time, as Polar sends it when the cancellation takes effect.
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.canceled",
        "subscription.revoked",
        "benefit_grant.revoked",
        "benefit_grant.revoked",
        "customer.state_changed",
    ]
    data = check_events(events)
    ended = data["subscription.revoked"][0]
    assert ended["status"] == "canceled" and ended["ended_at"] is not None
    assert ended["current_period_end"] == sub["current_period_end"]  # no new period
    assert answer["order"]["billing_reason"] == "subscription_create"  # and no new order
    assert data["customer.state_changed"][0]["active_subscriptions"] == []


def test_refunds(
    polar: Polar,
    api: httpx.Client,
    control: httpx.Client,
    org: str,
    catalog: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    bought = purchase(control, org, catalog["one_time"]["id"], "u1")
    order_id = bought["order_id"]
    refund_path = f"/_emulator/orders/{order_id}/refund"
    before = len(raised(emulator))
    answer = _post(control, refund_path, 201, amount=2000, reason="service_disruption")
    events = raised(emulator)[before:]
    assert (
        [e["type"] for e in events]
        == answer["events"]
        == ["refund.created", "order.updated", "order.refunded"]
    )
    data = check_events(events)
    refund = data["refund.created"][0]
    validate_schema("Refund", answer["refund"])
    assert (refund["status"], refund["amount"], refund["reason"], refund["order_id"]) == (
        "succeeded",
        2000,
        "service_disruption",
        order_id,
    )
    order = data["order.refunded"][0]
    assert (order["status"], order["paid"], order["refunded_amount"], order["refundable_amount"]) == (
        "partially_refunded",
        True,
        2000,
        7900,
    )
    assert _post(control, refund_path, 422, amount=7901)["detail"][0]["loc"] == ["body", "amount"]
    # The rest, with the benefits of a one-time order.
    rest = _post(control, refund_path, 201, revoke_benefits=True)
    assert rest["refund"]["amount"] == 7900 and rest["order"]["status"] == "refunded"
    assert polar.orders.get(order_id).status == "refunded"
    assert _post(control, refund_path, 403)["error"] == "RefundedAlready"
    assert _post(control, "/_emulator/orders/7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11/refund", 404)


def test_refunding_a_subscription_order_keeps_the_subscription(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    refund_path = f"/_emulator/orders/{bought['order_id']}/refund"
    assert _post(control, refund_path, 400, revoke_benefits=True)["error"] == "BadRequest"
    answer = _post(control, refund_path, 201)
    assert answer["order"]["status"] == "refunded" and answer["events"] == [
        "refund.created",
        "order.updated",
        "order.refunded",
    ]
    assert polar.subscriptions.get(bought["subscription_id"]).status == "active"


def test_unknown_subscription_and_bad_bodies(control: httpx.Client) -> None:
    missing = "/_emulator/subscriptions/7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"
    assert _post(control, f"{missing}/renew", 404)["error"] == "ResourceNotFound"
    assert _post(control, f"{missing}/past-due", 404)["error"] == "ResourceNotFound"
    assert _post(control, f"{missing}/cancel", 404)["error"] == "ResourceNotFound"
    assert control.post(f"{missing}/renew", json={"payment": "maybe"}).status_code == 422


def test_lifecycle_deliveries_are_signed_and_load(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    wanted = sorted(set(RENEWAL + PAST_DUE + ["refund.created", "order.refunded", "subscription.active"]))
    receiver = Receiver().start()
    try:
        endpoint = webhook_endpoint(api, org, receiver.url, wanted)
        before = len(raised(emulator))
        bought = purchase(control, org, catalog["monthly"]["id"], "u1")
        _renew(control, bought["subscription_id"])
        _post(control, f"/_emulator/subscriptions/{bought['subscription_id']}/past-due")
        _post(control, f"/_emulator/orders/{bought['order_id']}/refund", 201)
        expected = sorted(e["type"] for e in raised(emulator)[before:] if e["type"] in wanted)
        wait_for(lambda: len(receiver.received) >= len(expected), what="lifecycle webhooks")
    finally:
        receiver.stop()
    assert sorted(check_deliveries(receiver.received, endpoint["secret"])) == expected
    for event_type in (
        "subscription.cycled",
        "subscription.past_due",
        "benefit_grant.cycled",
        "refund.created",
    ):
        assert event_type in expected
    call(api, "GET", "/v1/orders/", 200, params={"subscription_id": bought["subscription_id"]})
