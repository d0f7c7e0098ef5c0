"""Benefits through the real SDK and raw HTTP, validated against Polar's spec."""

from __future__ import annotations

import pytest
from polar.v2026_10.errors import HTTPValidationError, ResourceNotFound

from polar_emulator_tests.resource_helpers import METER_BODY, call, demo_token, http, org_id, sdk


def test_sdk_operations_on_every_supported_type(emulator, issue_token):
    polar = sdk(emulator, demo_token(emulator, issue_token))
    meter = polar.meters.create(**METER_BODY)
    created = [
        polar.benefits.create(type="custom", description="Priority support", properties={"note": "Mail us"}),
        polar.benefits.create(
            type="feature_flag", description="Beta access", properties={}, metadata={"flag": "beta"}
        ),
        polar.benefits.create(
            type="license_keys",
            description="License key",
            properties={"prefix": "PRO", "activations": {"limit": 3, "enable_customer_admin": True}},
        ),
        polar.benefits.create(
            type="meter_credit",
            description="1000 API calls",
            properties={"units": 1000, "rollover": False, "meter_id": meter.id},
        ),
    ]
    assert [b.type for b in created] == ["custom", "feature_flag", "license_keys", "meter_credit"]
    assert created[2].properties.activations.limit == 3
    assert polar.benefits.get(created[3].id).properties.meter_id == meter.id
    assert polar.benefits.list(limit=100).pagination.total_count == 4
    assert [b.id for b in polar.benefits.list(type="feature_flag").items] == [created[1].id]
    assert [b.id for b in polar.benefits.list(query="LICENSE").items] == [created[2].id]

    updated = polar.benefits.update(created[0].id, type="custom", description="Premium support")
    assert updated.description == "Premium support" and updated.modified_at is not None
    polar.benefits.delete(created[0].id)
    with pytest.raises(ResourceNotFound):
        polar.benefits.get(created[0].id)
    assert polar.benefits.list().pagination.total_count == 3
    types = [e["type"] for e in emulator.store.extra["raised_events"]]
    assert types.count("benefit.created") == 4 and types.count("benefit.updated") == 1


def test_raw_responses_match_spec(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        body = {"type": "feature_flag", "description": "Flag", "properties": {}, "organization_id": org}
        benefit = call(client, "POST", "/v1/benefits/", 201, json=body)
        path = f"/v1/benefits/{benefit['id']}"
        call(client, "GET", "/v1/benefits/", 200)
        call(client, "GET", "/v1/benefits/{id}", 200, path=path)
        call(
            client,
            "PATCH",
            "/v1/benefits/{id}",
            200,
            path=path,
            json={"type": "feature_flag", "metadata": {"k": "v"}},
        )
        wrong = call(client, "PATCH", "/v1/benefits/{id}", 422, path=path, json={"type": "custom"})
        assert wrong["detail"][0]["loc"] == ["body", "type"]
        call(client, "DELETE", "/v1/benefits/{id}", 204, path=path)
        call(client, "DELETE", "/v1/benefits/{id}", 404, path=path)


def test_validation(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        short = client.post(
            "/v1/benefits/",
            json={"type": "custom", "description": "ab", "properties": {}, "organization_id": org},
        )
        assert short.status_code == 422 and short.json()["detail"][0]["loc"][:2] == ["body", "custom"]
        long_ = {"type": "custom", "description": "x" * 43, "properties": {}, "organization_id": org}
        assert client.post("/v1/benefits/", json=long_).status_code == 422
        credit = {
            "type": "meter_credit",
            "description": "Credits",
            "properties": {"units": 5, "rollover": True, "meter_id": "00000000-0000-4000-8000-000000000000"},
            "organization_id": org,
        }
        unknown_meter = call(client, "POST", "/v1/benefits/", 422, json=credit)
        assert unknown_meter["detail"][0]["loc"] == ["body", "properties", "meter_id"]
    polar = sdk(emulator, demo_token(emulator, issue_token))
    with pytest.raises(HTTPValidationError):
        polar.benefits.create(
            type="discord", description="Discord", properties={"guild_token": "x", "role_id": "1"}
        )


def test_metadata_filter_and_or(emulator, issue_token):
    polar = sdk(emulator, demo_token(emulator, issue_token))
    a = polar.benefits.create(
        type="feature_flag", description="Alpha", properties={}, metadata={"tier": "gold", "n": 1}
    )
    b = polar.benefits.create(
        type="feature_flag", description="Bravo", properties={}, metadata={"tier": "silver", "n": 1}
    )
    c = polar.benefits.create(
        type="feature_flag", description="Charlie", properties={}, metadata={"tier": "gold", "n": "2"}
    )

    def ids(**metadata):
        return {x.id for x in polar.benefits.list(metadata=metadata).items}

    assert ids(tier="gold") == {a.id, c.id}
    assert ids(tier=["gold", "silver"]) == {a.id, b.id, c.id}
    assert ids(tier="gold", n="1") == {a.id}
    assert ids(n=2) == {c.id}
