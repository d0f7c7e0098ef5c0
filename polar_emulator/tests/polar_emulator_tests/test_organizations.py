"""Organizations through the real SDK and raw HTTP, validated against Polar's spec."""

from __future__ import annotations

import pytest
from polar.v2026_10.errors import HTTPValidationError, ResourceNotFound

from polar_emulator_tests.resource_helpers import call, http, org_id, sdk

MULTI = "multi@polar.local"


def test_sdk_list_get_create_update(emulator, issue_token):
    token = issue_token(MULTI)
    polar = sdk(emulator, token)
    listed = polar.organizations.list(limit=100)
    assert {o.slug for o in listed.items} == {"acme", "acme-labs"}
    acme = polar.organizations.get(org_id(emulator, "acme"))
    assert acme.name == "Acme" and acme.status == "active"

    created = polar.organizations.create(name="New Shop", slug="new-shop")
    assert created.slug == "new-shop"
    user = emulator.store.user_by_email(MULTI)
    assert emulator.store.memberships[user.id][created.id] == "owner"

    updated = polar.organizations.update(created.id, name="Renamed Shop", email="help@example.com")
    assert (updated.name, updated.email) == ("Renamed Shop", "help@example.com")
    assert updated.modified_at is not None
    raised = emulator.store.extra["raised_events"]
    assert raised[-1]["type"] == "organization.updated" and raised[-1]["data"]["name"] == "Renamed Shop"


def test_raw_responses_match_spec(emulator, issue_token):
    with http(emulator, issue_token(MULTI)) as client:
        page = call(client, "GET", "/v1/organizations/", 200)
        assert page["pagination"] == {"total_count": 2, "max_page": 1}
        oid = page["items"][0]["id"]
        call(client, "GET", "/v1/organizations/{id}", 200, path=f"/v1/organizations/{oid}")
        created = call(
            client, "POST", "/v1/organizations/", 201, json={"name": "Spec Shop", "slug": "spec-shop"}
        )
        call(
            client,
            "PATCH",
            "/v1/organizations/{id}",
            200,
            path=f"/v1/organizations/{created['id']}",
            json={"website": "https://example.com"},
        )
        dup = call(client, "POST", "/v1/organizations/", 422, json={"name": "Again", "slug": "spec-shop"})
        assert dup["detail"][0]["loc"] == ["body", "slug"]
        short = client.post("/v1/organizations/", json={"name": "x", "slug": "ok-slug"})
        assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "name"]


def test_narrowed_token_and_filters(emulator, issue_token):
    acme = org_id(emulator, "acme")
    with http(emulator, issue_token(MULTI, organization_ids=[acme])) as client:
        page = client.get("/v1/organizations/").json()
        assert [o["id"] for o in page["items"]] == [acme]
        other = org_id(emulator, "acme-labs")
        assert client.get(f"/v1/organizations/{other}").json() == {
            "error": "ResourceNotFound",
            "detail": "Not found",
        }
        empty = call(client, "GET", "/v1/organizations/", 200, params={"slug": "nope", "limit": 500})
        assert empty == {"items": [], "pagination": {"total_count": 0, "max_page": 0}}


def test_errors(emulator, issue_token):
    polar = sdk(emulator, issue_token())
    with pytest.raises(ResourceNotFound):
        polar.organizations.get(org_id(emulator, "acme"))  # another user's organization
    with pytest.raises(HTTPValidationError):
        polar.organizations.create(name="Demo again", slug="demo-org")
    with http(emulator, issue_token(scope="products:read")) as client:
        response = client.get("/v1/organizations/")
        assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_polar_version_header(emulator, issue_token):
    with http(emulator, issue_token()) as client:
        assert client.get("/v1/organizations/").headers["polar-version"] == "2026-10"
        assert (
            client.get("/v1/organizations/", headers={"Polar-Version": "2026-04"}).headers["polar-version"]
            == "2026-04"
        )
        unknown = client.get("/v1/organizations/", headers={"Polar-Version": "2030-01"})
        assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
