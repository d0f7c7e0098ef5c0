"""Checkouts: create and get through the SDK and raw HTTP, success_url placeholder, errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_webhook_payload, create_customer, raised
from polar_emulator_tests.resource_helpers import call, http

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES


def test_create_and_get_through_the_sdk(
    polar: Polar, catalog: dict[str, Any], emulator: EmulatorServer, org: str
) -> None:
    monthly, one_time = catalog["monthly"], catalog["one_time"]
    checkout = polar.checkouts.create(
        products=[monthly["id"], one_time["id"]],
        external_customer_id="user_1",
        customer_email="ada@example.com",
        metadata={"workspace": "w1"},
        success_url="https://app.example/done?checkout_id={CHECKOUT_ID}",
    )
    assert isinstance(checkout, o.Checkout)
    assert checkout.status == "open" and checkout.organization_id == org
    assert checkout.product_id == monthly["id"] and [p.id for p in checkout.products] == [
        monthly["id"],
        one_time["id"],
    ]
    assert checkout.amount == 1500 and checkout.currency == "usd"
    assert checkout.success_url == f"https://app.example/done?checkout_id={checkout.id}"
    assert checkout.url == f"{emulator.url}/checkout/{checkout.client_secret}"
    assert checkout.client_secret.startswith("polar_c_")
    assert (checkout.external_customer_id, checkout.customer_email, checkout.customer_id) == (
        "user_1",
        "ada@example.com",
        None,
    )
    assert checkout.metadata == {"workspace": "w1"}
    assert (checkout.units, checkout.min_units, checkout.max_units) == (None, None, None)
    lifetime = datetime.fromisoformat(checkout.expires_at) - datetime.fromisoformat(checkout.created_at)
    assert lifetime == timedelta(hours=1)
    again = polar.checkouts.get(checkout.id)
    assert again.success_url == checkout.success_url and again.id == checkout.id
    [event] = raised(emulator)[-1:]
    assert event["type"] == "checkout.created" and event["data"]["id"] == checkout.id
    check_webhook_payload("checkout.created", event["data"])


def test_raw_http_shapes_and_defaults(
    api: httpx.Client, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    body = call(api, "POST", "/v1/checkouts/", 201, json={"products": [catalog["one_time"]["id"]]})
    assert body["success_url"] == f"{emulator.url}/checkout/{body['client_secret']}/confirmation"
    assert body["products"][0]["benefits"] == [] and body["is_payment_required"] is True
    got = call(api, "GET", "/v1/checkouts/{id}", 200, path=f"/v1/checkouts/{body['id']}")
    assert got == body
    listed = call(api, "GET", "/v1/checkouts/", 200, params={"status": "open"})
    assert [c["id"] for c in listed["items"]] == [body["id"]]


def test_existing_customer_is_linked_and_expiry_shows(
    api: httpx.Client, catalog: dict[str, Any], org: str, emulator: EmulatorServer
) -> None:
    customer = create_customer(api, org)
    body = call(
        api,
        "POST",
        "/v1/checkouts/",
        201,
        json={"products": [catalog["monthly"]["id"]], "external_customer_id": "u1"},
    )
    assert body["customer_id"] == customer["id"] and body["customer_email"] == "a@example.com"
    assert [b["id"] for b in body["product"]["benefits"]] == [catalog["support"]["id"], catalog["flag"]["id"]]
    emulator.store.clock.advance(3601)
    assert (
        call(api, "GET", "/v1/checkouts/{id}", 200, path=f"/v1/checkouts/{body['id']}")["status"] == "expired"
    )


def test_validation_errors(api: httpx.Client, catalog: dict[str, Any]) -> None:
    empty = call(api, "POST", "/v1/checkouts/", 422, json={"products": []})
    assert empty["detail"][0]["loc"] == ["body", "products"] and empty["detail"][0]["type"] == "too_short"
    unknown = call(
        api, "POST", "/v1/checkouts/", 422, json={"products": ["7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"]}
    )
    assert unknown["detail"][0]["loc"] == ["body", "products", 0]
    missing = call(api, "POST", "/v1/checkouts/", 422, json={})
    assert missing["detail"][0]["loc"] == ["body", "products"] and missing["detail"][0]["type"] == "missing"


def test_unknown_and_foreign_checkouts_are_404(
    polar: Polar, api: httpx.Client, catalog: dict[str, Any], emulator: EmulatorServer, issue_token: Any
) -> None:
    with pytest.raises(errors.ResourceNotFound):
        polar.checkouts.get("7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11")
    body = call(api, "POST", "/v1/checkouts/", 201, json={"products": [catalog["monthly"]["id"]]})
    with http(emulator, issue_token("multi@polar.local")) as other:
        assert other.get(f"/v1/checkouts/{body['id']}").status_code == 404
        # Another user's product is "not found" for checkout creation.
        assert other.post("/v1/checkouts/", json={"products": [catalog["monthly"]["id"]]}).status_code == 422


def test_scopes(emulator: EmulatorServer, issue_token: Any, org: str, catalog: dict[str, Any]) -> None:
    with http(emulator, issue_token(scope="checkouts:read", organization_ids=[org])) as read_only:
        denied = read_only.post("/v1/checkouts/", json={"products": [catalog["monthly"]["id"]]})
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert read_only.get("/v1/checkouts/").status_code == 200
    with http(emulator, issue_token(scope="customers:read", organization_ids=[org])) as none:
        assert none.get("/v1/checkouts/").status_code == 403
