"""Products through the real SDK and raw HTTP, validated against Polar's spec."""

from __future__ import annotations

import pytest
from polar.v2026_10.errors import HTTPValidationError, ResourceNotFound

from polar_emulator_tests.resource_helpers import (
    METER_BODY,
    call,
    demo_token,
    fixed_price,
    http,
    org_id,
    product_body,
    sdk,
)

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def test_sdk_lifecycle(emulator, issue_token):
    polar = sdk(emulator, demo_token(emulator, issue_token))
    meter = polar.meters.create(**METER_BODY)
    benefit = polar.benefits.create(type="feature_flag", description="Beta access", properties={})
    product = polar.products.create(
        name="Pro plan",
        recurring_interval="month",
        prices=[
            {"amount_type": "fixed", "price_amount": 2000},
            {"amount_type": "metered_unit", "meter_id": meter.id, "unit_amount": "0.25", "cap_amount": 10000},
        ],
        metadata={"tenant": "t1"},
    )
    assert product.is_recurring and product.recurring_interval_count == 1 and product.is_deletable
    assert product.prices[1].meter.name == "API calls" and product.prices[1].unit_amount == "0.25"
    one_time = polar.products.create(name="E-book", prices=[{"amount_type": "custom", "minimum_amount": 500}])
    assert not one_time.is_recurring and one_time.recurring_interval is None

    with_benefit = polar.products.update_benefits(product.id, benefits=[benefit.id])
    assert [b.id for b in with_benefit.benefits] == [benefit.id]
    assert polar.products.get(product.id).benefits[0].description == "Beta access"
    assert [p.id for p in polar.products.list(benefit_id=benefit.id).items] == [product.id]
    assert [p.id for p in polar.products.list(is_recurring=False).items] == [one_time.id]

    renamed = polar.products.update(product.id, name="Pro plan v2", metadata={"tenant": "t2"})
    assert renamed.name == "Pro plan v2" and renamed.metadata == {"tenant": "t2"}
    polar.meters.update(meter.id, name="Requests")
    assert polar.products.get(product.id).prices[1].meter.name == "Requests"

    polar.products.delete(one_time.id)
    with pytest.raises(ResourceNotFound):
        polar.products.get(one_time.id)
    events = [e["type"] for e in emulator.store.extra["raised_events"] if e["type"].startswith("product.")]
    assert events == ["product.created", "product.created", "product.updated", "product.updated"]


def test_raw_every_price_type_matches_spec(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        meter = call(client, "POST", "/v1/meters/", 201, json={**METER_BODY, "organization_id": org})
        bodies = [
            product_body(
                org,
                prices=[
                    fixed_price(),
                    {"amount_type": "metered_unit", "meter_id": meter["id"], "unit_amount": 1.5},
                ],
            ),
            product_body(
                org,
                prices=[
                    {
                        "amount_type": "seat_based",
                        "price_currency": "eur",
                        "seat_tiers": {
                            "tiers": [
                                {"min_seats": 1, "max_seats": 10, "price_per_seat": 900},
                                {"min_seats": 11, "price_per_seat": 700},
                            ]
                        },
                    }
                ],
            ),
            product_body(
                org,
                recurring_interval=None,
                prices=[{"amount_type": "custom", "minimum_amount": 100, "preset_amount": 500}],
            ),
            product_body(
                org,
                recurring_interval="year",
                trial_interval="day",
                trial_interval_count=14,
                prices=[{"amount_type": "free"}],
            ),
        ]
        created = [call(client, "POST", "/v1/products/", 201, json=b) for b in bodies]
        assert created[1]["prices"][0]["seat_tiers"]["minimum_seats"] == 1
        assert created[1]["prices"][0]["seat_tiers"]["maximum_seats"] is None
        assert (
            created[3]["prices"][0]["amount_type"] == "fixed" and created[3]["prices"][0]["price_amount"] == 0
        )
        assert all(p["is_deletable"] for p in created)
        call(client, "GET", "/v1/products/", 200, params={"limit": 100})
        path = f"/v1/products/{created[0]['id']}"
        call(client, "GET", "/v1/products/{id}", 200, path=path)
        call(client, "PATCH", "/v1/products/{id}", 200, path=path, json={"visibility": "private"})
        benefit = call(
            client,
            "POST",
            "/v1/benefits/",
            201,
            json={"type": "custom", "description": "Support", "properties": {}, "organization_id": org},
        )
        with_benefit = call(
            client,
            "POST",
            "/v1/products/{id}/benefits",
            200,
            path=f"{path}/benefits",
            json={"benefits": [benefit["id"]]},
        )
        assert with_benefit["benefits"][0]["id"] == benefit["id"]
        call(client, "GET", "/v1/products/{id}", 404, path=f"/v1/products/{MISSING_ID}")
        assert client.delete(path).status_code == 204


def test_price_replacement_archives_omitted_prices(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        product = call(client, "POST", "/v1/products/", 201, json=product_body(org))
        old = product["prices"][0]
        path = f"/v1/products/{product['id']}"
        kept = call(
            client, "PATCH", "/v1/products/{id}", 200, path=path, json={"prices": [{"id": old["id"]}]}
        )
        assert [p["id"] for p in kept["prices"]] == [old["id"]]
        replaced = call(
            client, "PATCH", "/v1/products/{id}", 200, path=path, json={"prices": [fixed_price(2500)]}
        )
        assert [p["price_amount"] for p in replaced["prices"]] == [2500]
        assert emulator.store.collections["product_prices"][old["id"]]["is_archived"] is True
        gone = call(
            client, "PATCH", "/v1/products/{id}", 422, path=path, json={"prices": [{"id": old["id"]}]}
        )
        assert gone["detail"][0]["msg"] == "Price does not exist."

        interval = call(
            client, "PATCH", "/v1/products/{id}", 422, path=path, json={"recurring_interval": "year"}
        )
        assert interval["detail"][0] == {
            "type": "value_error",
            "loc": ["body", "recurring_interval"],
            "msg": "Recurring interval cannot be changed.",
            "input": "year",
        }
        same = call(
            client, "PATCH", "/v1/products/{id}", 200, path=path, json={"recurring_interval": "month"}
        )
        assert same["recurring_interval"] == "month"
        archived = call(client, "PATCH", "/v1/products/{id}", 200, path=path, json={"is_archived": True})
        assert archived["is_archived"] is True
        assert client.get("/v1/products/", params={"is_archived": "false"}).json()["items"] == []


def test_price_rules(emulator, issue_token):
    demo, acme = org_id(emulator, "demo-org"), org_id(emulator, "acme")
    with http(emulator, issue_token()) as client:
        meter = call(client, "POST", "/v1/meters/", 201, json={**METER_BODY, "organization_id": demo})

        def refused(**extra):
            return call(client, "POST", "/v1/products/", 422, json=product_body(demo, **extra))["detail"]

        assert (
            refused(prices=[fixed_price(), fixed_price(500)])[0]["msg"] == "Only one static price is allowed."
        )
        assert (
            refused(prices=[fixed_price(), {"amount_type": "custom"}])[0]["msg"]
            == "Only one static price is allowed."
        )
        metered = {"amount_type": "metered_unit", "meter_id": meter["id"], "unit_amount": "1"}
        assert refused(recurring_interval=None, prices=[fixed_price(), metered])[0]["msg"] == (
            "Metered pricing is not supported on one-time products."
        )
        assert refused(prices=[{**metered, "meter_id": MISSING_ID}])[0]["loc"] == [
            "body",
            "prices",
            0,
            "meter_id",
        ]
        assert refused(prices=[])[0]["loc"] == ["body", "prices"]
        assert refused(metadata={"k" * 41: "v"})[0]["loc"][:2] == ["body", "metadata"]
        assert refused(metadata={f"k{i}": "v" for i in range(51)})[0]["loc"] == ["body", "metadata"]
        assert refused(metadata={"k": ""})[0]["loc"][:3] == ["body", "metadata", "k"]
        # Fixed + seat-based and several currencies are fine.
        seats = {
            "amount_type": "seat_based",
            "seat_tiers": {"tiers": [{"min_seats": 1, "price_per_seat": 100}]},
        }
        call(
            client,
            "POST",
            "/v1/products/",
            201,
            json=product_body(demo, prices=[fixed_price(), seats, fixed_price(900, price_currency="eur")]),
        )
    with http(emulator, issue_token("multi@polar.local")) as client:
        foreign = {"amount_type": "metered_unit", "meter_id": meter["id"], "unit_amount": "1"}
        assert call(client, "POST", "/v1/products/", 422, json=product_body(acme, prices=[foreign]))[
            "detail"
        ][0]["msg"] == ("Meter does not exist.")


def test_organization_rules(emulator, issue_token):
    acme, labs, demo = org_id(emulator, "acme"), org_id(emulator, "acme-labs"), org_id(emulator, "demo-org")
    multi = sdk(emulator, issue_token("multi@polar.local"))
    with pytest.raises(HTTPValidationError) as info:
        multi.products.create(name="No org", recurring_interval="month", prices=[fixed_price()])
    assert info.value.error.detail[0].loc == ["body", "organization_id"]
    with pytest.raises(HTTPValidationError) as info:
        multi.products.create(
            name="Wrong org", recurring_interval="month", prices=[fixed_price()], organization_id=demo
        )
    assert info.value.error.detail[0].msg == "Organization not found."

    a = multi.products.create(
        name="Acme plan", recurring_interval="month", prices=[fixed_price()], organization_id=acme
    )
    b = multi.products.create(
        name="Labs plan", recurring_interval="month", prices=[fixed_price()], organization_id=labs
    )
    assert {p.id for p in multi.products.list().items} == {a.id, b.id}
    assert [p.id for p in multi.products.list(organization_id=labs).items] == [b.id]

    narrowed = sdk(emulator, issue_token("multi@polar.local", organization_ids=[labs]))
    implicit = narrowed.products.create(name="Implicit", recurring_interval="month", prices=[fixed_price()])
    assert implicit.organization_id == labs
    with pytest.raises(ResourceNotFound):
        narrowed.products.get(a.id)
    demo_benefit = sdk(emulator, demo_token(emulator, issue_token)).benefits.create(
        type="custom", description="Other org", properties={}
    )
    with pytest.raises(HTTPValidationError) as info:
        multi.products.update_benefits(a.id, benefits=[demo_benefit.id])
    assert info.value.error.detail[0].msg == "Benefit does not exist."


def test_scopes_and_roles(emulator, issue_token):
    demo = org_id(emulator, "demo-org")
    with http(emulator, issue_token(scope="products:read")) as client:
        denied = client.post("/v1/products/", json=product_body(demo))
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert client.get("/v1/products/").status_code == 200
    user = emulator.store.user_by_email("demo@polar.local")
    emulator.store.memberships[user.id][demo] = "member"  # members may manage products
    with http(emulator, issue_token()) as client:
        call(client, "POST", "/v1/products/", 201, json=product_body(demo))
    emulator.store.memberships[user.id][demo] = "finance"
    with http(emulator, issue_token()) as client:
        refused = client.post("/v1/products/", json=product_body(demo))
        assert refused.status_code == 403 and refused.json()["error"] == "NotPermitted"


def test_metadata_filter_and_pagination(emulator, issue_token):
    demo = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        metas = [
            {"tenant": "t1", "n": 1},
            {"tenant": "t2", "n": 1},
            {"tenant": "t1", "n": "2"},
            {"flag": True},
        ]
        ids = [
            call(client, "POST", "/v1/products/", 201, json=product_body(demo, metadata=m))["id"]
            for m in metas
        ]

        def found(params):
            return {p["id"] for p in client.get("/v1/products/", params=params).json()["items"]}

        assert found({"metadata[tenant]": "t1"}) == {ids[0], ids[2]}
        assert found([("metadata[tenant]", "t1"), ("metadata[tenant]", "t2")]) == {ids[0], ids[1], ids[2]}
        assert found({"metadata[tenant]": "t1", "metadata[n]": "1"}) == {ids[0]}
        assert found({"metadata[n]": "2"}) == {ids[2]}
        assert found({"metadata[flag]": "true"}) == {ids[3]}
        assert found({"metadata[tenant]": "nobody"}) == set()

        for i in range(97):
            client.post("/v1/products/", json=product_body(demo, name=f"Bulk {i:03}"))
        page = call(client, "GET", "/v1/products/", 200, params={"limit": 1000})
        assert len(page["items"]) == 100 and page["pagination"] == {"total_count": 101, "max_page": 2}
        second = client.get("/v1/products/", params={"limit": 100, "page": 2}).json()
        assert len(second["items"]) == 1
        by_name = client.get("/v1/products/", params={"sorting": "name", "query": "bulk", "limit": 3}).json()
        assert [p["name"] for p in by_name["items"]] == ["Bulk 000", "Bulk 001", "Bulk 002"]
        empty = call(client, "GET", "/v1/products/", 200, params={"query": "no such product"})
        assert empty["pagination"] == {"total_count": 0, "max_page": 0}
        assert client.get("/v1/products/", params={"sorting": "bogus"}).status_code == 422
        assert client.get("/v1/products/", params={"limit": 0}).status_code == 422
