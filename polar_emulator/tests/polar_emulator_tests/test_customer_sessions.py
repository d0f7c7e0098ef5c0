"""Customer sessions: by customer id or external id, portal URL, errors and scopes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from polar.v2026_10 import Polar
from polar.v2026_10 import outputs as o

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import create_customer
from polar_emulator_tests.resource_helpers import call, http, org_id

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES


def test_create_by_id_and_external_id(polar: Polar, org: str, emulator: EmulatorServer) -> None:
    customer = polar.customers.create(email="ada@example.com", external_id="u1", organization_id=org)
    session = polar.customer_sessions.create(
        customer_id=customer.id, return_url="https://app.example/billing"
    )
    assert isinstance(session, o.CustomerSession)
    assert session.token.startswith("polar_cst_") and session.customer_id == customer.id
    assert session.customer.email == "ada@example.com" and session.return_url == "https://app.example/billing"
    assert datetime.fromisoformat(session.expires_at) - datetime.fromisoformat(
        session.created_at
    ) == timedelta(hours=1)
    url = urlsplit(session.customer_portal_url)
    assert f"{url.scheme}://{url.netloc}" == emulator.url and url.path == "/demo-org/portal"
    assert parse_qs(url.query) == {"customer_session_token": [session.token], "email": ["ada@example.com"]}
    by_external = polar.customer_sessions.create(external_customer_id="u1")
    assert by_external.customer_id == customer.id and by_external.token != session.token


def test_raw_http_and_errors(api: httpx.Client, org: str) -> None:
    customer = create_customer(api, org)
    body = call(api, "POST", "/v1/customer-sessions/", 201, json={"customer_id": customer["id"]})
    assert body["customer"] == customer
    unknown = call(api, "POST", "/v1/customer-sessions/", 422, json={"external_customer_id": "nobody"})
    assert unknown["detail"][0]["loc"] == ["body", "external_customer_id"]
    unknown_id = call(
        api,
        "POST",
        "/v1/customer-sessions/",
        422,
        json={"customer_id": "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"},
    )
    assert unknown_id["detail"][0]["loc"] == ["body", "customer_id"]
    assert api.post("/v1/customer-sessions/", json={}).status_code == 422


def test_ambiguous_external_id_across_orgs_is_409(emulator: EmulatorServer, issue_token: Any) -> None:
    with http(emulator, issue_token("multi@polar.local")) as client:
        for slug in ("acme", "acme-labs"):
            client.post(
                "/v1/customers/",
                json={
                    "email": "a@example.com",
                    "external_id": "x",
                    "organization_id": org_id(emulator, slug),
                },
            )
        response = client.post("/v1/customer-sessions/", json={"external_customer_id": "x"})
        assert response.status_code == 409 and response.json()["error"] == "AmbiguousExternalCustomerID"


def test_scope(emulator: EmulatorServer, issue_token: Any, org: str) -> None:
    with http(emulator, issue_token(scope="customers:write", organization_ids=[org])) as client:
        response = client.post("/v1/customer-sessions/", json={"external_customer_id": "u1"})
        assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
