"""The billing endpoints check exactly the OAuth scopes Polar's OpenAPI document requires."""

from __future__ import annotations

from typing import Any

import pytest

from polar_emulator import EmulatorServer
from polar_emulator.domain.oauth import ALL_SCOPES
from polar_emulator_tests.resource_helpers import http, org_id
from polar_emulator_tests.spec import spec

UNKNOWN = "7b0c5f6e-3f64-4f7e-9a53-1c0b6f1f2a11"
# (method, path template, concrete path, JSON body)
CALLS = [
    ("GET", "/v1/orders/", "/v1/orders/", None),
    ("GET", "/v1/orders/{id}", f"/v1/orders/{UNKNOWN}", None),
    ("PATCH", "/v1/subscriptions/{id}", f"/v1/subscriptions/{UNKNOWN}", {"cancel_at_period_end": True}),
    ("GET", "/v1/customer-meters/", "/v1/customer-meters/", None),
    ("GET", "/v1/customer-meters/{id}", f"/v1/customer-meters/{UNKNOWN}", None),
    ("POST", "/v1/checkouts/", "/v1/checkouts/", {"products": [UNKNOWN]}),
    ("POST", "/v1/customer-sessions/", "/v1/customer-sessions/", {"external_customer_id": "nobody"}),
    (
        "GET",
        "/v1/customers/external/{external_id}/state",
        "/v1/customers/external/nobody/state",
        None,
    ),
    ("POST", "/v1/events/ingest", "/v1/events/ingest", {"events": []}),
]


def spec_scopes(method: str, template: str) -> set[str]:
    security = spec()["paths"][template][method.lower()]["security"]
    return {scope for requirement in security for scope in requirement.get("oidc", [])}


@pytest.mark.parametrize(("method", "template", "path", "body"), CALLS, ids=[f"{c[0]} {c[1]}" for c in CALLS])
def test_scopes_are_the_specs(
    emulator: EmulatorServer, issue_token: Any, method: str, template: str, path: str, body: Any
) -> None:
    org = org_id(emulator, "demo-org")
    required = spec_scopes(method, template)
    assert required
    others = " ".join(s for s in ALL_SCOPES if s not in required)
    with http(emulator, issue_token(scope=others, organization_ids=[org])) as client:
        denied = client.request(method, path, json=body)
        assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope", denied.text
        header = denied.headers["www-authenticate"]
        assert set(header.split('scope="', 1)[1].rstrip('"').split()) == required
    for scope in sorted(required):
        with http(emulator, issue_token(scope=scope, organization_ids=[org])) as client:
            allowed = client.request(method, path, json=body)
            assert allowed.status_code != 403 or allowed.json()["error"] != "insufficient_scope", scope
