"""Events ingest: 200 with counts, dedupe on (organization, external_id), all-or-nothing."""

from __future__ import annotations

from typing import Any

import httpx
from polar.v2026_10 import Polar
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import create_customer
from polar_emulator_tests.resource_helpers import METER_BODY, call, http, org_id

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

INGEST = "/v1/events/ingest"


def stored(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return list(emulator.store.collections["events"].values())


def test_ingest_through_the_sdk_dedupes_on_external_id(
    polar: Polar, org: str, emulator: EmulatorServer
) -> None:
    customer = polar.customers.create(email="a@example.com", external_id="u1", organization_id=org)
    first = polar.events.ingest(
        events=[
            {"name": "api_call", "customer_id": customer.id, "external_id": "e1", "metadata": {"tokens": 5}},
            {"name": "api_call", "external_customer_id": "u1", "external_id": "e2"},
            {"name": "api_call", "external_customer_id": "u1"},
        ]
    )
    assert isinstance(first, o.EventsIngestResponse) and (first.inserted, first.duplicates) == (3, 0)
    again = polar.events.ingest(
        events=[
            {"name": "api_call", "external_customer_id": "u1", "external_id": "e1"},
            {"name": "api_call", "external_customer_id": "u1", "external_id": "e3"},
            {"name": "api_call", "external_customer_id": "u1", "external_id": "e3"},  # same batch
            {"name": "api_call", "external_customer_id": "u1"},  # no external_id: never a duplicate
        ]
    )
    assert (again.inserted, again.duplicates) == (2, 2)  # e1 seen before, e3 twice in the batch
    assert len(stored(emulator)) == 5
    event = next(e for e in stored(emulator) if e["external_id"] == "e1")
    assert (event["customer_id"], event["name"], event["metadata"], event["source"]) == (
        customer.id,
        "api_call",
        {"tokens": 5},
        "user",
    )
    assert emulator.store.collections["customers"][customer.id]["first_user_event_at"] is not None


def test_unknown_customer_rejects_the_whole_batch(
    api: httpx.Client, org: str, emulator: EmulatorServer
) -> None:
    body = call(
        api,
        "POST",
        INGEST,
        422,
        json={
            "events": [
                {"name": "ok", "external_customer_id": "u1", "external_id": "a"},
                {"name": "bad", "customer_id": "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"},
            ]
        },
    )
    assert body["detail"][0]["loc"] == ["body", "events", 1, "customer_id"]
    assert stored(emulator) == []
    too_long = call(
        api, "POST", INGEST, 422, json={"events": [{"name": "x" * 129, "external_customer_id": "u1"}]}
    )
    assert too_long["detail"] and stored(emulator) == []
    assert call(api, "POST", INGEST, 200, json={"events": []}) == {"inserted": 0, "duplicates": 0}


def test_dedupe_is_per_organization(emulator: EmulatorServer, issue_token: Any) -> None:
    acme, labs = org_id(emulator, "acme"), org_id(emulator, "acme-labs")
    with http(emulator, issue_token("multi@polar.local")) as client:
        missing = call(
            client, "POST", INGEST, 422, json={"events": [{"name": "x", "external_customer_id": "u"}]}
        )
        assert missing["detail"][0]["loc"] == ["body", "events", 0, "organization_id"]
        batch = [
            {"name": "x", "external_customer_id": "u", "external_id": "same", "organization_id": acme},
            {"name": "x", "external_customer_id": "u", "external_id": "same", "organization_id": labs},
        ]
        assert call(client, "POST", INGEST, 200, json={"events": batch}) == {"inserted": 2, "duplicates": 0}
        assert call(client, "POST", INGEST, 200, json={"events": batch}) == {"inserted": 0, "duplicates": 2}
        foreign = org_id(emulator, "demo-org")
        bad = call(
            client,
            "POST",
            INGEST,
            422,
            json={"events": [{"name": "x", "external_customer_id": "u", "organization_id": foreign}]},
        )
        assert bad["detail"][0]["msg"] == "Organization not found."


def test_scope_is_events_write(emulator: EmulatorServer, issue_token: Any, org: str) -> None:
    with http(emulator, issue_token(scope="events:read customers:write", organization_ids=[org])) as client:
        response = client.post(INGEST, json={"events": [{"name": "x", "external_customer_id": "u"}]})
        assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_usage_shows_in_customer_state_meters(api: httpx.Client, org: str) -> None:
    meter = call(api, "POST", "/v1/meters/", 201, json={**METER_BODY, "organization_id": org})
    customer = create_customer(api, org)
    events = [{"name": "api_call", "external_customer_id": "u1"}] * 3 + [
        {"name": "other", "external_customer_id": "u1"}
    ]
    call(api, "POST", INGEST, 200, json={"events": events})
    state = call(api, "GET", "/v1/customers/{id}/state", 200, path=f"/v1/customers/{customer['id']}/state")
    [usage] = state["active_meters"]
    assert (usage["meter_id"], usage["consumed_units"], usage["credited_units"], usage["balance"]) == (
        meter["id"],
        3,
        0,
        -3,
    )
