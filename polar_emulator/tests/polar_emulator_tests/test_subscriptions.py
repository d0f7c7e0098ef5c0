"""Subscriptions: list filters, get and revoke, with the events a revoke raises."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_webhook_payload, purchase, raised
from polar_emulator_tests.resource_helpers import call, http

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES


def test_list_and_get_through_the_sdk(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    first = purchase(control, org, catalog["monthly"]["id"], "u1")
    second = purchase(control, org, catalog["monthly"]["id"], "u2")
    purchase(control, org, catalog["one_time"]["id"], "u3")  # no subscription
    page = polar.subscriptions.list(organization_id=org)
    assert isinstance(page, o.ListResourceSubscription)
    assert {s.id for s in page.items} == {first["subscription_id"], second["subscription_id"]}
    sub = polar.subscriptions.get(first["subscription_id"])
    assert (sub.status, sub.customer_id, sub.product_id, sub.amount, sub.units) == (
        "active",
        first["customer_id"],
        catalog["monthly"]["id"],
        1500,
        None,
    )
    assert (
        sub.customer.external_id == "u1"
        and sub.product.name == "Pro"
        and sub.checkout_id == first["checkout_id"]
    )
    assert [p.id for p in sub.prices] == [catalog["monthly"]["prices"][0]["id"]]
    assert [s.id for s in polar.subscriptions.list(external_customer_id="u2").items] == [
        second["subscription_id"]
    ]
    assert [s.id for s in polar.subscriptions.list(customer_id=first["customer_id"]).items] == [
        first["subscription_id"]
    ]
    assert polar.subscriptions.list(product_id=catalog["one_time"]["id"]).pagination.total_count == 0
    assert polar.subscriptions.list(status="active").pagination.total_count == 2


def test_revoke(
    polar: Polar,
    api: httpx.Client,
    control: httpx.Client,
    org: str,
    catalog: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    before = len(raised(emulator))
    revoked = call(
        api, "DELETE", "/v1/subscriptions/{id}", 200, path=f"/v1/subscriptions/{bought['subscription_id']}"
    )
    assert (
        revoked["status"] == "canceled"
        and revoked["ended_at"]
        and revoked["canceled_at"]
        and not revoked["cancel_at_period_end"]
    )
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == [
        "subscription.updated",
        "subscription.canceled",
        "subscription.revoked",
        "benefit_grant.revoked",
        "benefit_grant.revoked",
        "customer.state_changed",
    ]
    for event in events:
        check_webhook_payload(event["type"], event["data"])
    state = events[-1]["data"]
    assert state["active_subscriptions"] == [] and state["granted_benefits"] == []
    again = call(
        api, "DELETE", "/v1/subscriptions/{id}", 403, path=f"/v1/subscriptions/{bought['subscription_id']}"
    )
    assert again["error"] == "AlreadyCanceledSubscription"
    assert polar.subscriptions.list(active=False).items[0].id == bought["subscription_id"]
    assert polar.subscriptions.list(active=True).pagination.total_count == 0


def test_revoke_through_the_sdk(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    assert polar.subscriptions.revoke(bought["subscription_id"]).status == "canceled"
    with pytest.raises(errors.AlreadyCanceledSubscription):
        polar.subscriptions.revoke(bought["subscription_id"])


def test_raw_list_filters_and_404s(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    listed = call(
        api, "GET", "/v1/subscriptions/", 200, params={"organization_id": org, "sorting": "-amount"}
    )
    assert [s["id"] for s in listed["items"]] == [bought["subscription_id"]]
    call(api, "GET", "/v1/subscriptions/{id}", 200, path=f"/v1/subscriptions/{bought['subscription_id']}")
    bad = call(api, "GET", "/v1/subscriptions/", 422, params={"status": "bogus"})
    assert bad["detail"][0]["loc"] == ["query", "status", 0]
    assert (
        call(api, "GET", "/v1/subscriptions/", 422, params={"sorting": "nope"})["detail"][0]["loc"][0]
        == "query"
    )
    missing = "/v1/subscriptions/7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"
    assert call(api, "GET", "/v1/subscriptions/{id}", 404, path=missing)["error"] == "ResourceNotFound"
    call(api, "DELETE", "/v1/subscriptions/{id}", 404, path=missing)


def test_scopes_and_other_users(
    emulator: EmulatorServer, issue_token: Any, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    path = f"/v1/subscriptions/{bought['subscription_id']}"
    with http(emulator, issue_token(scope="subscriptions:read", organization_ids=[org])) as read_only:
        assert read_only.get(path).status_code == 200
        denied = read_only.delete(path)
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    with http(emulator, issue_token("multi@polar.local")) as other:
        assert other.get(path).status_code == 404
        assert other.get("/v1/subscriptions/").json()["pagination"]["total_count"] == 0
