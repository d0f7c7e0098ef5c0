"""Meters through the real SDK and raw HTTP, validated against Polar's spec."""

from __future__ import annotations

import pytest
from polar.v2026_10.errors import HTTPValidationError, ResourceNotFound

from polar_emulator_tests.resource_helpers import METER_BODY, call, demo_token, http, org_id, sdk


def test_sdk_create_list_get_update(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    polar = sdk(emulator, demo_token(emulator, issue_token))
    meter = polar.meters.create(**METER_BODY, metadata={"team": "core"})
    assert meter.organization_id == org and meter.unit == "scalar" and meter.archived_at is None
    assert polar.meters.get(meter.id).name == "API calls"
    assert [m.id for m in polar.meters.list(query="api").items] == [meter.id]

    archived = polar.meters.update(meter.id, is_archived=True, name="Old calls")
    assert archived.archived_at is not None and archived.name == "Old calls"
    assert polar.meters.list(is_archived=False).items == []
    assert [m.id for m in polar.meters.list(is_archived=True).items] == [meter.id]
    assert polar.meters.update(meter.id, is_archived=False).archived_at is None


def test_raw_responses_match_spec(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        body = {
            **METER_BODY,
            "organization_id": org,
            "unit": "custom",
            "custom_label": "tokens",
            "custom_multiplier": 1000,
            "aggregation": {"func": "sum", "property": "tokens"},
            "filter": {
                "conjunction": "or",
                "clauses": [
                    {"property": "name", "operator": "eq", "value": "llm"},
                    {"conjunction": "and", "clauses": [{"property": "tokens", "operator": "gt", "value": 0}]},
                ],
            },
        }
        meter = call(client, "POST", "/v1/meters/", 201, json=body)
        assert meter["filter"]["clauses"][1]["clauses"][0]["value"] == 0
        call(client, "GET", "/v1/meters/", 200)
        path = f"/v1/meters/{meter['id']}"
        call(client, "GET", "/v1/meters/{id}", 200, path=path)
        call(
            client,
            "PATCH",
            "/v1/meters/{id}",
            200,
            path=path,
            json={"aggregation": {"func": "unique", "property": "u"}},
        )
        missing = call(
            client, "POST", "/v1/meters/", 422, json={**METER_BODY, "organization_id": org, "unit": "custom"}
        )
        assert missing["detail"][0]["loc"] == ["body", "custom_label"]


def test_rules(emulator, issue_token):
    polar = sdk(emulator, issue_token("multi@polar.local"))
    with pytest.raises(HTTPValidationError) as info:
        polar.meters.create(**METER_BODY)
    assert info.value.error.detail[0].loc == ["body", "organization_id"]
    with pytest.raises(ResourceNotFound):
        polar.meters.get("00000000-0000-4000-8000-000000000000")
    with http(emulator, issue_token(scope="meters:read")) as client:
        denied = client.post(
            "/v1/meters/", json={**METER_BODY, "organization_id": org_id(emulator, "demo-org")}
        )
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
