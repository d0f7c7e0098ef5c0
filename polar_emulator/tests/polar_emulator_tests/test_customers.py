"""Customers: CRUD, uniqueness 422s, external-id lookups, state, scopes and events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from polar.base import PolarDeserializationError
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_webhook_payload, create_customer, purchase, raised
from polar_emulator_tests.resource_helpers import call, http, org_id

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES


def test_create_get_list_through_the_sdk(polar: Polar, org: str, emulator: EmulatorServer) -> None:
    created = polar.customers.create(
        email="ada@example.com",
        external_id="user_1",
        name="Ada",
        metadata={"plan": "pro"},
        organization_id=org,
    )
    assert isinstance(created, o.CustomerIndividual)
    assert (created.email, created.external_id, created.organization_id) == ("ada@example.com", "user_1", org)
    assert polar.customers.get(created.id).id == created.id
    assert polar.customers.get_external("user_1").id == created.id
    polar.customers.create(email="bob@example.com", organization_id=org)
    page = polar.customers.list(organization_id=org, limit=1)
    assert page.pagination.total_count == 2 and page.pagination.max_page == 2
    assert page.items[0].email == "bob@example.com"  # newest first
    assert [c.email for c in polar.customers.list(query="ADA").items] == ["ada@example.com"]
    assert [c.email for c in polar.customers.list(metadata={"plan": "pro"}).items] == ["ada@example.com"]
    assert [c.email for c in polar.customers.list(email="bob@example.com").items] == ["bob@example.com"]
    assert [e["type"] for e in raised(emulator)] == ["customer.created", "customer.created"]
    check_webhook_payload("customer.created", raised(emulator)[0]["data"])


def test_raw_http_shapes_match_the_spec(api: httpx.Client, org: str) -> None:
    body = create_customer(api, org, "ada@example.com")
    call(api, "GET", "/v1/customers/{id}", 200, path=f"/v1/customers/{body['id']}")
    call(api, "GET", "/v1/customers/external/{external_id}", 200, path="/v1/customers/external/u1")
    listed = call(api, "GET", "/v1/customers/", 200, params={"organization_id": org, "sorting": "email"})
    assert listed["items"][0]["id"] == body["id"]
    state = call(api, "GET", "/v1/customers/{id}/state", 200, path=f"/v1/customers/{body['id']}/state")
    assert state["active_subscriptions"] == state["granted_benefits"] == state["active_meters"] == []
    updated = call(
        api,
        "PATCH",
        "/v1/customers/{id}",
        200,
        path=f"/v1/customers/{body['id']}",
        json={"name": "Ada L", "metadata": {"a": 1}},
    )
    assert updated["name"] == "Ada L" and updated["metadata"] == {"a": 1} and updated["modified_at"]
    call(api, "DELETE", "/v1/customers/{id}", 204, path=f"/v1/customers/{body['id']}")
    call(api, "GET", "/v1/customers/{id}", 404, path=f"/v1/customers/{body['id']}")


def test_duplicate_email_and_external_id_are_422_not_409(api: httpx.Client, org: str) -> None:
    create_customer(api, org, "ada@example.com")
    dup = create_customer(api, org, "ADA@example.com", status=422)
    assert dup["error"] == "PolarRequestValidationError"
    assert [(d["loc"], d["type"]) for d in dup["detail"]] == [
        (["body", "email"], "value_error"),
        (["body", "external_id"], "value_error"),
    ]
    only_ext = create_customer(api, org, "new@example.com", status=422)
    assert [d["loc"] for d in only_ext["detail"]] == [["body", "external_id"]]


def test_duplicates_are_per_organization(emulator: EmulatorServer, issue_token: Any) -> None:
    acme, labs = org_id(emulator, "acme"), org_id(emulator, "acme-labs")
    with http(emulator, issue_token("multi@polar.local")) as client:
        for org_ in (acme, labs):
            create_customer(client, org_, external_id="x")
        # A token reaching both orgs cannot tell the two "x" customers apart (Polar: MultipleResultsFound).
        assert client.get("/v1/customers/external/x").status_code == 500
        missing_org = call(client, "POST", "/v1/customers/", 422, json={"email": "b@example.com"})
        assert missing_org["detail"][0]["loc"] == ["body", "organization_id"]
        assert (
            call(client, "GET", "/v1/customers/", 200, params={"organization_id": acme})["pagination"][
                "total_count"
            ]
            == 1
        )


def test_request_validation_422s(api: httpx.Client, org: str) -> None:
    bad = call(api, "POST", "/v1/customers/", 422, json={"email": "not-an-email", "organization_id": org})
    assert bad["detail"][0]["loc"] == ["body", "email"] and bad["detail"][0]["type"] == "value_error"
    missing = call(api, "POST", "/v1/customers/", 422, json={"organization_id": org})
    assert missing["detail"][0]["loc"] == ["body", "email"] and missing["detail"][0]["type"] == "missing"
    assert call(api, "GET", "/v1/customers/{id}", 422, path="/v1/customers/nope")["detail"][0]["loc"] == [
        "path",
        "id",
    ]
    assert api.get("/v1/customers/", params={"limit": 0}).status_code == 422


def test_external_id_cannot_change_once_set(api: httpx.Client, org: str) -> None:
    c = create_customer(api, org)
    err = call(
        api, "PATCH", "/v1/customers/{id}", 422, path=f"/v1/customers/{c['id']}", json={"external_id": "u2"}
    )
    assert err["detail"][0]["loc"] == ["body", "external_id"]
    renamed = call(
        api,
        "PATCH",
        "/v1/customers/external/{external_id}",
        200,
        path="/v1/customers/external/u1",
        json={"name": "A"},
    )
    assert renamed["name"] == "A"


def test_unknown_ids_are_404(polar: Polar, api: httpx.Client) -> None:
    with pytest.raises(errors.ResourceNotFound):
        polar.customers.get("7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11")
    with pytest.raises(errors.ResourceNotFound):
        polar.customers.get_external("nobody")
    with pytest.raises(errors.ResourceNotFound):
        polar.customers.get_state_external("nobody")
    body = call(
        api,
        "GET",
        "/v1/customers/{id}/state",
        404,
        path="/v1/customers/7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11/state",
    )
    assert body == {"error": "ResourceNotFound", "detail": "Not found"}


def test_other_users_customers_are_invisible(
    emulator: EmulatorServer, api: httpx.Client, issue_token: Any
) -> None:
    c = create_customer(api, org_id(emulator, "demo-org"), external_id=None)
    with http(emulator, issue_token("multi@polar.local")) as other:
        assert other.get(f"/v1/customers/{c['id']}").status_code == 404
        assert other.get("/v1/customers/").json()["pagination"]["total_count"] == 0


def test_scopes(emulator: EmulatorServer, issue_token: Any, org: str) -> None:
    with http(emulator, issue_token(scope="customers:read", organization_ids=[org])) as read_only:
        denied = read_only.post("/v1/customers/", json={"email": "a@example.com"})
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert read_only.get("/v1/customers/").status_code == 200
    with http(emulator, issue_token(scope="products:read", organization_ids=[org])) as none:
        assert none.get("/v1/customers/").status_code == 403
        assert none.get("/v1/customers/external/x/state").status_code == 403


def test_state_after_a_purchase(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "user_42")
    state = call(
        api,
        "GET",
        "/v1/customers/external/{external_id}/state",
        200,
        path="/v1/customers/external/user_42/state",
    )
    assert state["id"] == bought["customer_id"] and state["external_id"] == "user_42"
    [sub] = state["active_subscriptions"]
    assert (sub["id"], sub["status"], sub["product_id"], sub["amount"]) == (
        bought["subscription_id"],
        "active",
        catalog["monthly"]["id"],
        1500,
    )
    assert (sub["seats"], sub["units"], sub["meters"]) == (None, None, [])  # SDK-required extras
    grants = state["granted_benefits"]
    assert {g["benefit_id"] for g in grants} == {catalog["support"]["id"], catalog["flag"]["id"]}
    assert {g["benefit_type"] for g in grants} == {"custom", "feature_flag"}
    by_id = call(
        api, "GET", "/v1/customers/{id}/state", 200, path=f"/v1/customers/{bought['customer_id']}/state"
    )
    assert by_id == state
    # An update emits customer.updated then customer.state_changed, both full shapes.
    call(
        api,
        "PATCH",
        "/v1/customers/{id}",
        200,
        path=f"/v1/customers/{bought['customer_id']}",
        json={"name": "Grace"},
    )
    last = raised(emulator)[-2:]
    assert [e["type"] for e in last] == ["customer.updated", "customer.state_changed"]
    check_webhook_payload("customer.updated", last[0]["data"])
    assert (
        check_webhook_payload("customer.state_changed", last[1]["data"], sdk=False)["data"]["name"] == "Grace"
    )


def test_sdk_1_0_2_cannot_load_a_state_with_an_active_subscription(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    """polar-sdk 1.0.2 types ``CustomerStateSubscription.status`` as ``Literal["granted", "disabled"]``
    (two inline enums titled "Status" collided in its generator); Polar sends "active"/"trialing".
    The emulator stays faithful to the API, so the SDK fails here as it does against polar.sh."""
    bought = purchase(control, org, catalog["monthly"]["id"], "user_42")
    with pytest.raises(PolarDeserializationError):
        polar.customers.get_state(bought["customer_id"])
    polar.subscriptions.revoke(bought["subscription_id"])
    state = polar.customers.get_state_external("user_42")  # no active subscription: loads
    assert isinstance(state, o.CustomerStateIndividual) and state.active_subscriptions == []
