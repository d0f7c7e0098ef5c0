"""Customer meters fed by events ingest: list and get through polar-sdk and raw HTTP, meter
credits from benefits, resets at renewal, ``customer.state_changed`` after usage, and scopes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from polar.v2026_10 import Polar, errors
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import check_events, create_customer, purchase, raised
from polar_emulator_tests.resource_helpers import METER_BODY, call, fixed_price, http

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

INGEST = "/v1/events/ingest"


def _meter(api: httpx.Client, org: str, **extra: Any) -> dict[str, Any]:
    return call(api, "POST", "/v1/meters/", 201, json={**METER_BODY, "organization_id": org, **extra})


def _calls(api: httpx.Client, external_id: str, n: int, prefix: str = "e") -> dict[str, Any]:
    events = [
        {"name": "api_call", "external_customer_id": external_id, "external_id": f"{prefix}{i}"}
        for i in range(n)
    ]
    return call(api, "POST", INGEST, 200, json={"events": events})


def test_ingest_feeds_customer_meters_through_the_sdk(
    polar: Polar, api: httpx.Client, org: str, emulator: EmulatorServer
) -> None:
    meter = _meter(api, org)
    customer = create_customer(api, org, email="a@example.com", external_id="u1")
    before = len(raised(emulator))
    assert _calls(api, "u1", 3) == {"inserted": 3, "duplicates": 0}
    # The meter changed: one customer.state_changed carrying the whole state.
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == ["customer.state_changed"]
    [state] = check_events(events)["customer.state_changed"]
    assert [(m["meter_id"], m["consumed_units"]) for m in state["active_meters"]] == [(meter["id"], 3)]

    page = polar.customer_meters.list(organization_id=org)
    assert isinstance(page, o.ListResourceCustomerMeter)
    [row] = page.items
    assert (row.customer_id, row.meter_id, row.consumed_units, row.credited_units, row.balance) == (
        customer["id"],
        meter["id"],
        3,
        0,
        -3,
    )
    assert row.customer.external_id == "u1" and row.meter.name == "API calls" and row.modified_at is None
    assert state["active_meters"][0]["id"] == row.id
    # Duplicates (same external_id) change nothing and send nothing.
    before = len(raised(emulator))
    assert _calls(api, "u1", 3) == {"inserted": 0, "duplicates": 3}
    assert raised(emulator)[before:] == []
    assert _calls(api, "u1", 2, prefix="f") == {"inserted": 2, "duplicates": 0}
    got = polar.customer_meters.get(row.id)
    assert isinstance(got, o.CustomerMeter) and got.consumed_units == 5 and got.modified_at is not None
    assert [r.id for r in polar.customer_meters.list(external_customer_id="u1").items] == [row.id]
    assert polar.customer_meters.list(external_customer_id="nobody").items == []
    assert [r.id for r in polar.customer_meters.list(meter_id=meter["id"]).items] == [row.id]
    with pytest.raises(errors.ResourceNotFound):
        polar.customer_meters.get("7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11")


def test_raw_shapes_sorting_and_archived_meters(api: httpx.Client, org: str) -> None:
    calls = _meter(api, org)
    tokens = _meter(
        api,
        org,
        name="Tokens",
        filter={"conjunction": "and", "clauses": [{"property": "name", "operator": "eq", "value": "llm"}]},
        aggregation={"func": "sum", "property": "tokens"},
    )
    create_customer(api, org, email="a@example.com", external_id="u1")
    create_customer(api, org, email="b@example.com", external_id="u2")
    _calls(api, "u1", 2)
    events = [{"name": "llm", "external_customer_id": "u2", "metadata": {"tokens": 700}}]
    call(api, "POST", INGEST, 200, json={"events": events})
    listed = call(api, "GET", "/v1/customer-meters/", 200, params={"sorting": "-consumed_units"})
    assert [(r["meter_id"], r["consumed_units"]) for r in listed["items"]] == [
        (tokens["id"], 700),
        (calls["id"], 2),
    ]
    by_name = call(api, "GET", "/v1/customer-meters/", 200, params={"sorting": "meter_name"})
    assert [r["meter"]["name"] for r in by_name["items"]] == ["API calls", "Tokens"]
    row = listed["items"][0]
    assert call(api, "GET", "/v1/customer-meters/{id}", 200, path=f"/v1/customer-meters/{row['id']}") == row
    call(api, "PATCH", "/v1/meters/{id}", 200, path=f"/v1/meters/{tokens['id']}", json={"is_archived": True})
    hidden = call(api, "GET", "/v1/customer-meters/", 200)
    assert [r["meter_id"] for r in hidden["items"]] == [calls["id"]]
    shown = call(api, "GET", "/v1/customer-meters/", 200, params={"meter_id": tokens["id"]})
    assert [r["id"] for r in shown["items"]] == [row["id"]]
    assert call(api, "GET", "/v1/customer-meters/", 422, params={"sorting": "name"})["detail"]


def test_meter_credits_and_reset_at_renewal(
    polar: Polar, api: httpx.Client, control: httpx.Client, org: str, emulator: EmulatorServer
) -> None:
    meter = _meter(api, org)
    credits = call(
        api,
        "POST",
        "/v1/benefits/",
        201,
        json={
            "type": "meter_credit",
            "description": "1000 calls a month",
            "properties": {"meter_id": meter["id"], "units": 1000, "rollover": False},
            "organization_id": org,
        },
    )
    plan = call(
        api,
        "POST",
        "/v1/products/",
        201,
        json={
            "name": "Metered",
            "recurring_interval": "month",
            "prices": [fixed_price(900)],
            "organization_id": org,
        },
    )
    call(
        api,
        "POST",
        "/v1/products/{id}/benefits",
        200,
        path=f"/v1/products/{plan['id']}/benefits",
        json={"benefits": [credits["id"]]},
    )
    bought = purchase(control, org, plan["id"], "u1")
    _calls(api, "u1", 4)
    [row] = polar.customer_meters.list(customer_id=bought["customer_id"]).items
    assert (row.consumed_units, row.credited_units, row.balance) == (4, 1000, 996)

    before = len(raised(emulator))
    control.post(f"/_emulator/subscriptions/{bought['subscription_id']}/renew").raise_for_status()
    data = check_events(raised(emulator)[before:])
    [state] = data["customer.state_changed"]
    assert [(m["consumed_units"], m["credited_units"], m["balance"]) for m in state["active_meters"]] == [
        (0, 1000, 1000)
    ]
    _calls(api, "u1", 1, prefix="next")
    assert polar.customer_meters.get(row.id).consumed_units == 1

    # Past due: the credit grant is revoked, so nothing is credited.
    control.post(f"/_emulator/subscriptions/{bought['subscription_id']}/past-due").raise_for_status()
    assert polar.customer_meters.get(row.id).credited_units == 0


def test_scope_is_customer_meters_read(emulator: EmulatorServer, issue_token: Any, org: str) -> None:
    with http(emulator, issue_token(scope="customer_meters:read", organization_ids=[org])) as reader:
        assert reader.get("/v1/customer-meters/").status_code == 200
    with http(emulator, issue_token(scope="meters:read customers:read", organization_ids=[org])) as other:
        denied = other.get("/v1/customer-meters/")
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
        assert 'scope="customer_meters:read"' in denied.headers["www-authenticate"]
