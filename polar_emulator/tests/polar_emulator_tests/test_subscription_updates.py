"""``PATCH /v1/subscriptions/{id}``: cancel at period end, uncancel, revoke, product change and
metadata, through polar-sdk and raw HTTP, with the events Polar sends (NOTES 10.4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_events, purchase, raised
from polar_emulator_tests.resource_helpers import call, fixed_price, http

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

PATCH = "/v1/subscriptions/{id}"


def _patch(api: httpx.Client, sub_id: str, status: int, body: dict[str, Any]) -> Any:
    return call(api, "PATCH", PATCH, status, path=f"/v1/subscriptions/{sub_id}", json=body)


def _since(emulator: EmulatorServer, before: int) -> list[dict[str, Any]]:
    return raised(emulator)[before:]


def test_cancel_at_period_end_and_uncancel_through_the_sdk(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    sub = polar.subscriptions.update(
        bought["subscription_id"],
        cancel_at_period_end=True,
        customer_cancellation_reason="too_expensive",
        customer_cancellation_comment="Pricey",
    )
    assert isinstance(sub, o.Subscription)
    assert sub.status == "active" and sub.cancel_at_period_end is True
    assert sub.canceled_at is not None and sub.ends_at == sub.current_period_end and sub.ended_at is None
    assert (sub.customer_cancellation_reason, sub.customer_cancellation_comment) == (
        "too_expensive",
        "Pricey",
    )
    events = _since(emulator, before)
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.canceled",
        "customer.state_changed",
    ]
    data = check_events(events)
    [state] = data["customer.state_changed"]
    [active] = state["active_subscriptions"]  # still active until the period ends, benefits kept
    assert active["cancel_at_period_end"] is True and len(state["granted_benefits"]) == 2
    assert polar.subscriptions.list(cancel_at_period_end=True).pagination.total_count == 1

    with pytest.raises(errors.SubscriptionsUpdate403Error) as info:
        polar.subscriptions.update(bought["subscription_id"], cancel_at_period_end=True)
    assert info.value.error.error == "AlreadyCanceledSubscription"

    before = len(raised(emulator))
    sub = polar.subscriptions.update(bought["subscription_id"], cancel_at_period_end=False)
    assert sub.cancel_at_period_end is False and sub.canceled_at is None and sub.ends_at is None
    assert sub.customer_cancellation_reason is None and sub.customer_cancellation_comment is None
    events = _since(emulator, before)
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.uncanceled",
        "customer.state_changed",
    ]
    check_events(events)
    # Nothing scheduled: polar-sdk 1.0.2's 409 SubscriptionNotScheduledToCancel.
    with pytest.raises(errors.SubscriptionsUpdate409Error) as conflict:
        polar.subscriptions.update(bought["subscription_id"], cancel_at_period_end=False)
    assert conflict.value.error.error == "SubscriptionNotScheduledToCancel"


def test_revoke_through_patch_and_what_follows(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    sub = _patch(
        api, bought["subscription_id"], 200, {"revoke": True, "customer_cancellation_reason": "unused"}
    )
    assert sub["status"] == "canceled" and sub["ended_at"] and sub["customer_cancellation_reason"] == "unused"
    events = _since(emulator, before)
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.canceled",
        "subscription.revoked",
        "benefit_grant.revoked",
        "benefit_grant.revoked",
        "customer.state_changed",
    ]
    check_events(events)
    path = bought["subscription_id"]
    assert _patch(api, path, 403, {"revoke": True})["error"] == "AlreadyCanceledSubscription"
    assert _patch(api, path, 403, {"cancel_at_period_end": True})["error"] == "AlreadyCanceledSubscription"
    gone = api.patch(f"/v1/subscriptions/{path}", json={"cancel_at_period_end": False})
    assert gone.status_code == 410 and gone.json()["error"] == "ResourceUnavailable"
    assert _patch(api, path, 403, {"product_id": catalog["monthly"]["id"]})["error"] == (
        "AlreadyCanceledSubscription"
    )


def _second_plan(api: httpx.Client, org: str, catalog: dict[str, Any], amount: int = 4500) -> dict[str, Any]:
    """A monthly "Team" plan with the flag benefit only."""
    team = call(
        api,
        "POST",
        "/v1/products/",
        201,
        json={
            "name": "Team",
            "recurring_interval": "month",
            "prices": [fixed_price(amount)],
            "organization_id": org,
        },
    )
    return call(
        api,
        "POST",
        "/v1/products/{id}/benefits",
        200,
        path=f"/v1/products/{team['id']}/benefits",
        json={"benefits": [catalog["flag"]["id"]]},
    )


def test_product_change_prorate_swaps_benefits(
    polar: Polar,
    api: httpx.Client,
    control: httpx.Client,
    org: str,
    catalog: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    team = _second_plan(api, org, catalog)
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    sub = polar.subscriptions.update(bought["subscription_id"], product_id=team["id"])
    assert sub.product_id == team["id"] and sub.amount == 4500 and sub.product.name == "Team"
    assert [p.id for p in sub.prices] == [team["prices"][0]["id"]]
    events = _since(emulator, before)
    # prorate (the default): only subscription.updated; the support grant goes, the flag stays.
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "benefit_grant.revoked",
        "customer.state_changed",
    ]
    data = check_events(events)
    assert data["benefit_grant.revoked"][0]["benefit"]["id"] == catalog["support"]["id"]
    [state] = data["customer.state_changed"]
    assert [g["benefit_id"] for g in state["granted_benefits"]] == [catalog["flag"]["id"]]
    assert polar.orders.list(subscription_id=bought["subscription_id"]).pagination.total_count == 1

    # Back again: the support grant is re-granted with the same id, as Polar reuses grant rows.
    old_support = next(g for g in data["benefit_grant.revoked"])
    before = len(raised(emulator))
    polar.subscriptions.update(bought["subscription_id"], product_id=catalog["monthly"]["id"])
    events = _since(emulator, before)
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "benefit_grant.created",
        "customer.state_changed",
    ]
    assert check_events(events)["benefit_grant.created"][0]["id"] == old_support["id"]


def test_product_change_invoice_and_next_period(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    team = _second_plan(api, org, catalog)
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    sub_id = bought["subscription_id"]
    before = len(raised(emulator))
    sub = _patch(api, sub_id, 200, {"product_id": team["id"], "proration_behavior": "invoice"})
    assert sub["product_id"] == team["id"]
    events = _since(emulator, before)
    assert [e["type"] for e in events] == [
        "order.created",
        "subscription.updated",
        "order.updated",
        "order.paid",
        "benefit_grant.revoked",
        "customer.state_changed",
    ]
    data = check_events(events)
    created, paid = data["order.created"][0], data["order.paid"][0]
    assert created["status"] == "pending" and paid["status"] == "paid"
    assert paid["billing_reason"] == "subscription_update" and paid["subscription_id"] == sub_id
    # Almost the whole period is left: nearly the full difference (3000 cents) is billed.
    assert 2990 <= paid["total_amount"] <= 3000 and paid["items"][0]["proration"] is True

    before = len(raised(emulator))
    sub = _patch(
        api, sub_id, 200, {"product_id": catalog["monthly"]["id"], "proration_behavior": "next_period"}
    )
    assert sub["product_id"] == team["id"]  # unchanged until the next period
    pending = sub["pending_update"]
    assert (
        pending["product_id"] == catalog["monthly"]["id"]
        and pending["applies_at"] == sub["current_period_end"]
    )
    assert [e["type"] for e in _since(emulator, before)] == ["subscription.updated", "customer.state_changed"]
    check_events(_since(emulator, before))
    cleared = _patch(api, sub_id, 200, {"pending_update": None})
    assert cleared["pending_update"] is None and cleared["product_id"] == team["id"]

    bad = _patch(api, sub_id, 422, {"product_id": catalog["monthly"]["id"], "proration_behavior": "reset"})
    assert bad["detail"][0]["loc"] == ["body", "proration_behavior"]


def test_product_change_refusals(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    sub_id = bought["subscription_id"]
    before = len(raised(emulator))
    one_time = _patch(api, sub_id, 422, {"product_id": catalog["one_time"]["id"]})
    assert (
        one_time["detail"][0]["loc"] == ["body", "product_id"]
        and "not recurring" in one_time["detail"][0]["msg"]
    )
    unknown = _patch(api, sub_id, 422, {"product_id": "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"})
    assert unknown["detail"][0]["msg"] == "Product does not exist."
    team = _second_plan(api, org, catalog)
    call(
        api, "PATCH", "/v1/products/{id}", 200, path=f"/v1/products/{team['id']}", json={"is_archived": True}
    )
    assert "archived" in _patch(api, sub_id, 422, {"product_id": team["id"]})["detail"][0]["msg"]
    # One kind of change per request: the shapes forbid extra fields.
    mixed = _patch(api, sub_id, 422, {"cancel_at_period_end": True, "product_id": team["id"]})
    assert mixed["detail"]
    assert _patch(api, sub_id, 422, {"discount_id": "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"})["detail"]
    _patch(api, sub_id, 200, {"cancel_at_period_end": True})
    canceling = _patch(api, sub_id, 403, {"product_id": catalog["monthly"]["id"]})
    assert canceling["error"] == "AlreadyCanceledSubscription"
    assert [e["type"] for e in _since(emulator, before)].count("benefit_grant.revoked") == 0
    not_emulated = api.patch(f"/v1/subscriptions/{sub_id}", json={"seats": 3})
    assert not_emulated.status_code == 501 and not_emulated.json()["error"] == "NotImplemented"


def test_metadata_update(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    sub = polar.subscriptions.update(bought["subscription_id"], metadata={"seat_tier": "gold", "n": 3})
    assert sub.metadata == {"seat_tier": "gold", "n": 3}
    assert [e["type"] for e in _since(emulator, before)] == ["subscription.updated", "customer.state_changed"]
    assert polar.subscriptions.list(metadata={"seat_tier": "gold"}).pagination.total_count == 1


def test_scope_is_subscriptions_write(
    emulator: EmulatorServer, issue_token: Any, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    path = f"/v1/subscriptions/{bought['subscription_id']}"
    with http(emulator, issue_token(scope="subscriptions:read", organization_ids=[org])) as read_only:
        denied = read_only.patch(path, json={"cancel_at_period_end": True})
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert 'scope="subscriptions:write"' in denied.headers["www-authenticate"]
    with http(emulator, issue_token("multi@polar.local")) as other:
        assert other.patch(path, json={"cancel_at_period_end": True}).status_code == 404
