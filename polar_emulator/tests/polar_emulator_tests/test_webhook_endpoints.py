"""Webhook endpoint management through the real SDK and raw HTTP, validated against Polar's spec."""

from __future__ import annotations

import re

import pytest
from polar.v2026_10.errors import HTTPValidationError, ResourceNotFound

from polar_emulator import EmulatorConfig, EmulatorServer
from polar_emulator.domain.oauth import Token
from polar_emulator_tests.resource_helpers import call, demo_token, http, org_id, sdk

SECRET = re.compile(r"^whsec_[A-Za-z0-9]{43}$")
LOCAL_URL = "http://127.0.0.1:9/hooks"


def test_sdk_lifecycle(emulator, issue_token):
    polar = sdk(emulator, demo_token(emulator, issue_token))
    endpoint = polar.webhooks.create_webhook_endpoint(url=LOCAL_URL, format="raw", events=["product.created"])
    assert SECRET.match(endpoint.secret) and endpoint.enabled
    assert endpoint.api_version == "2026-10" and endpoint.uses_standard_webhook_signature is False
    stored = emulator.store.collections["webhook_endpoints"][endpoint.id]
    assert stored["secret"] == endpoint.secret and stored["events"] == ["product.created"]

    assert polar.webhooks.get_webhook_endpoint(endpoint.id).secret == endpoint.secret
    assert [e.id for e in polar.webhooks.list_webhook_endpoints().items] == [endpoint.id]
    disabled = polar.webhooks.update_webhook_endpoint(endpoint.id, enabled=False, events=["product.updated"])
    assert not disabled.enabled and disabled.events == ["product.updated"]
    assert polar.webhooks.update_webhook_endpoint(endpoint.id, enabled=True).enabled
    reset = polar.webhooks.reset_webhook_endpoint_secret(endpoint.id)
    assert SECRET.match(reset.secret) and reset.secret != endpoint.secret
    polar.webhooks.delete_webhook_endpoint(endpoint.id)
    with pytest.raises(ResourceNotFound):
        polar.webhooks.get_webhook_endpoint(endpoint.id)
    assert emulator.store.collections["webhook_endpoints"] == {}


def test_raw_responses_match_spec(emulator, issue_token):
    org = org_id(emulator, "demo-org")
    with http(emulator, issue_token()) as client:
        body = {
            "url": "https://example.com/hooks",
            "format": "raw",
            "events": ["order.paid"],
            "organization_id": org,
        }
        endpoint = call(client, "POST", "/v1/webhooks/endpoints", 201, json=body)
        path = f"/v1/webhooks/endpoints/{endpoint['id']}"
        assert call(client, "GET", "/v1/webhooks/endpoints", 200)["pagination"]["total_count"] == 1
        call(client, "GET", "/v1/webhooks/endpoints/{id}", 200, path=path)
        call(
            client,
            "PATCH",
            "/v1/webhooks/endpoints/{id}",
            200,
            path=path,
            json={"name": "Orders", "format": "slack"},
        )
        call(client, "PATCH", "/v1/webhooks/endpoints/{id}/secret", 200, path=f"{path}/secret")
        call(client, "DELETE", "/v1/webhooks/endpoints/{id}", 204, path=path)
        call(client, "DELETE", "/v1/webhooks/endpoints/{id}", 404, path=path)
        bad_event = client.post("/v1/webhooks/endpoints", json={**body, "events": ["nope"]})
        assert bad_event.status_code == 422 and bad_event.json()["detail"][0]["loc"][:2] == ["body", "events"]
        assert client.post("/v1/webhooks/endpoints", json={**body, "url": "not a url"}).status_code == 422


def test_organization_rules_scopes_and_roles(emulator, issue_token):
    acme, demo = org_id(emulator, "acme"), org_id(emulator, "demo-org")
    multi = sdk(emulator, issue_token("multi@polar.local"))
    with pytest.raises(HTTPValidationError) as info:
        multi.webhooks.create_webhook_endpoint(url=LOCAL_URL, format="raw", events=[])
    assert info.value.error.detail[0].loc == ["body", "organization_id"]
    with pytest.raises(HTTPValidationError):
        multi.webhooks.create_webhook_endpoint(url=LOCAL_URL, format="raw", events=[], organization_id=demo)
    endpoint = multi.webhooks.create_webhook_endpoint(
        url=LOCAL_URL, format="raw", events=[], organization_id=acme
    )

    with http(emulator, issue_token("multi@polar.local", scope="webhooks:read")) as client:
        assert client.get("/v1/webhooks/endpoints").json()["pagination"]["total_count"] == 1
        denied = client.post(
            "/v1/webhooks/endpoints",
            json={"url": LOCAL_URL, "format": "raw", "events": [], "organization_id": acme},
        )
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"

    user = emulator.store.user_by_email("multi@polar.local")
    emulator.store.memberships[user.id][acme] = "member"
    with http(emulator, issue_token("multi@polar.local")) as client:
        assert client.get("/v1/webhooks/endpoints").json()["items"] == []  # filtered, not refused
        refused = client.get(f"/v1/webhooks/endpoints/{endpoint.id}")
        assert refused.status_code == 403 and refused.json()["error"] == "NotPermitted"
        created = client.post(
            "/v1/webhooks/endpoints",
            json={"url": LOCAL_URL, "format": "raw", "events": [], "organization_id": acme},
        )
        assert created.status_code == 403 and created.json()["error"] == "NotPermitted"
    with http(emulator, issue_token()) as client:
        assert client.get(f"/v1/webhooks/endpoints/{endpoint.id}").json()["error"] == "ResourceNotFound"


def test_strict_urls():
    server = EmulatorServer(EmulatorConfig(strict_webhook_urls=True)).start()
    try:
        store = server.store
        user = store.user_by_email("demo@polar.local")
        token = Token(
            access_token="polar_at_u_stricttesttoken",
            refresh_token=None,
            client_id=next(iter(store.clients)),
            user_id=user.id,
            scope="webhooks:read webhooks:write",
            issued_at=store.clock.time(),
            expires_in=3600,
        )
        store.add_token(token)
        org = store.user_organization_ids(user.id)[0]
        with http(server, token.access_token) as client:

            def create(url):
                return client.post(
                    "/v1/webhooks/endpoints",
                    json={"url": url, "format": "raw", "events": [], "organization_id": org},
                )

            for url in (
                "https://localhost/x",
                "https://127.0.0.1/x",
                "https://10.1.2.3/x",
                "https://[::1]/x",
                "https://api.localhost/x",
            ):
                refused = create(url)
                assert refused.status_code == 422, url
                assert (
                    "Webhook URLs cannot point to localhost or private IP addresses."
                    in refused.json()["detail"][0]["msg"]
                )
            assert create("http://example.com/x").json()["detail"][0]["type"] == "url_scheme"
            endpoint = create("https://example.com/x").json()
            assert endpoint["url"] == "https://example.com/x"
            path = f"/v1/webhooks/endpoints/{endpoint['id']}"
            assert client.patch(path, json={"url": "https://192.168.0.1/x"}).status_code == 422
            store.collections["webhook_endpoints"][endpoint["id"]].update(
                url="https://127.0.0.1/old", enabled=False
            )
            assert client.patch(path, json={"enabled": True}).status_code == 422  # re-enabling revalidates
    finally:
        server.stop()
