"""Orders: list (filters, sorting) and get, through polar-sdk and raw HTTP against the spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import purchase
from polar_emulator_tests.resource_helpers import call, http

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES


def test_list_and_get_through_the_sdk(
    polar: Polar, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    first = purchase(control, org, catalog["monthly"]["id"], "u1")
    second = purchase(control, org, catalog["one_time"]["id"], "u2")
    page = polar.orders.list(organization_id=org)
    assert isinstance(page, o.ListResourceOrder) and page.pagination.total_count == 2
    assert [x.id for x in page.items] == [second["order_id"], first["order_id"]]  # -created_at
    order = polar.orders.get(first["order_id"])
    assert isinstance(order, o.Order)
    assert (order.status, order.paid, order.billing_reason, order.total_amount, order.currency) == (
        "paid",
        True,
        "subscription_create",
        1500,
        "usd",
    )
    assert order.customer.external_id == "u1" and order.subscription.id == first["subscription_id"]
    assert order.product.name == "Pro" and order.checkout_id == first["checkout_id"]
    assert [x.id for x in polar.orders.list(external_customer_id="u2").items] == [second["order_id"]]
    assert [x.id for x in polar.orders.list(customer_id=first["customer_id"]).items] == [first["order_id"]]
    assert [x.id for x in polar.orders.list(product_billing_type="one_time").items] == [second["order_id"]]
    assert [x.id for x in polar.orders.list(subscription_id=first["subscription_id"]).items] == [
        first["order_id"]
    ]
    assert polar.orders.list(status=["refunded", "void"]).pagination.total_count == 0
    assert [x.id for x in polar.orders.list(sorting=["amount"]).items] == [
        first["order_id"],
        second["order_id"],
    ]
    with pytest.raises(errors.ResourceNotFound):
        polar.orders.get("7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11")


def test_raw_shapes_filters_and_422s(
    api: httpx.Client, control: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    listed = call(api, "GET", "/v1/orders/", 200, params={"checkout_id": bought["checkout_id"], "limit": 1})
    assert [x["id"] for x in listed["items"]] == [bought["order_id"]] and listed["pagination"][
        "max_page"
    ] == 1
    got = call(api, "GET", "/v1/orders/{id}", 200, path=f"/v1/orders/{bought['order_id']}")
    assert got == listed["items"][0]
    created = got["created_at"]
    assert call(api, "GET", "/v1/orders/", 200, params={"created_before": created})["items"] == []
    assert call(api, "GET", "/v1/orders/", 200, params={"created_after": "2000-01-01T00:00:00Z"})["items"]
    bad = call(api, "GET", "/v1/orders/", 422, params={"created_after": "yesterday"})
    assert bad["detail"][0]["loc"] == ["query", "created_after"]
    assert call(api, "GET", "/v1/orders/", 422, params={"status": "lost"})["detail"][0]["loc"] == [
        "query",
        "status",
        0,
    ]
    assert call(api, "GET", "/v1/orders/", 422, params={"sorting": "total"})["detail"][0]["loc"][0] == "query"
    emulator.store.collections["orders"][bought["order_id"]]["metadata"] = {"source": "web"}
    only = call(api, "GET", "/v1/orders/", 200, params={"metadata[source]": "web"})
    assert [x["id"] for x in only["items"]] == [bought["order_id"]]
    assert call(api, "GET", "/v1/orders/", 200, params={"metadata[source]": "app"})["items"] == []
    call(api, "GET", "/v1/orders/{id}", 404, path="/v1/orders/7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11")


def test_scope_is_orders_read_and_orders_stay_in_their_organization(
    emulator: EmulatorServer, issue_token: Any, control: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    bought = purchase(control, org, catalog["monthly"]["id"], "u1")
    path = f"/v1/orders/{bought['order_id']}"
    with http(emulator, issue_token(scope="orders:read", organization_ids=[org])) as reader:
        assert reader.get(path).status_code == 200
    # The spec's security requirement is orders:read alone: orders:write does not read.
    with http(emulator, issue_token(scope="orders:write", organization_ids=[org])) as writer:
        denied = writer.get("/v1/orders/")
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert 'scope="orders:read"' in denied.headers["www-authenticate"]
    with http(emulator, issue_token("multi@polar.local")) as other:
        assert other.get(path).status_code == 404
        assert other.get("/v1/orders/").json()["pagination"]["total_count"] == 0
