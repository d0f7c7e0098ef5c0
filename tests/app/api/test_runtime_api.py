"""The tenant API's runtime calls against the local Polar: a checkout for a plan paid on Polar's
hosted page, the customer's state read back with the plan active, a portal link for that customer;
bad bodies named by field, a grant lacking a scope refused before Polar is called, Polar's failures
as JSON errors. Every answer is held to the OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from polar.base import PolarDeserializationError
from polar_emulator import EmulatorServer
from polar_emulator.domain.store import collection
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.catalog import load_catalog
from provisioning.catalog.model import RUNTIME_SCOPES
from provisioning.config import Settings
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token
from provisioning.polar.client import polar_sdk
from provisioning.tenant import billing
from provisioning.tenant.billing import InvalidRequest
from tests.app.api.conftest import call
from tests.app.polar.conftest import MakeKey

STATE = "/customers/{external_id}/state"
SUCCESS_URL = "https://tenant.example.com/welcome?session={CHECKOUT_ID}"


def _checkout(client: FlaskClient, key: str, **body: Any) -> Any:
    return call(client, "/checkouts", key, method="POST", json=body)


def _integration(session: Session, workspace_id: str) -> PolarIntegration:
    session.expire_all()
    found = session.scalar(select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id))
    assert found is not None
    return found


def _requests(control: httpx.Client) -> list[dict[str, Any]]:
    answer = control.get("/_emulator/requests").json()
    return answer["requests"] if isinstance(answer, dict) else answer


def test_checkout_paid_on_polars_page_shows_the_plan_active_and_opens_the_portal(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    products = {m.plan_id: m.polar_product_id for m in integration.product_mappings}

    created = _checkout(
        client,
        key,
        plan="pro-monthly",
        external_customer_id="tenant-user-42",
        customer_email="buyer@example.com",
        success_url=SUCCESS_URL,
        metadata={"source": "pricing-page", "seats": 3, "trial": False},
    )
    assert created.status_code == 201, created.get_json()
    assert created.headers["Cache-Control"] == "no-store"
    checkout = created.get_json()
    assert set(checkout) == {"id", "url", "expires_at"}
    stored = collection(emulator.store, "checkouts")[checkout["id"]]
    assert stored["external_customer_id"] == "tenant-user-42"
    assert stored["customer_email"] == "buyer@example.com"
    assert stored["success_url"] == SUCCESS_URL
    assert stored["metadata"] == {"source": "pricing-page", "seats": 3, "trial": False}
    assert [p["id"] for p in stored["products"]] == [products["pro-monthly"]]

    # The customer opens Polar's hosted page and presses Pay.
    page = httpx.get(checkout["url"])
    assert page.status_code == 200 and "Pay" in page.text
    paid = control.post(checkout["url"], data={}, follow_redirects=False)
    assert paid.status_code == 303, paid.text

    state = call(client, "/customers/tenant-user-42/state", key, template=STATE)
    assert state.status_code == 200, state.get_json()
    body = state.get_json()
    assert body["external_id"] == "tenant-user-42"
    [subscription] = body["active_subscriptions"]
    assert subscription["plan"] == "pro-monthly"
    assert subscription["status"] == "active"
    assert subscription["cancel_at_period_end"] is False
    assert subscription["current_period_end"]
    assert body["granted_benefits"], body
    assert all(g["benefit_id"] for g in body["granted_benefits"])
    assert any(g["benefit"] for g in body["granted_benefits"])
    # polar-sdk 1.0.2 cannot load this state: its CustomerStateSubscription.status allows neither
    # "active" nor "trialing" (polar_emulator_tests/test_customers.py), so the API reads it as JSON.
    token = access_token(settings, _integration(session, ready.id))
    with pytest.raises(PolarDeserializationError):
        polar_sdk(emulator.url).customers.get_state_external("tenant-user-42", request_access_token=token)

    portal = call(
        client, "/customer-portal", key, method="POST", json={"external_customer_id": "tenant-user-42"}
    )
    assert portal.status_code == 201, portal.get_json()
    link = portal.get_json()
    assert set(link) == {"url", "expires_at"}
    assert httpx.get(link["url"]).status_code < 500


def test_an_unknown_customer_is_a_404(client: FlaskClient, ready: Workspace, make_key: MakeKey) -> None:
    key = make_key(ready.id)
    state = call(client, "/customers/nobody/state", key, template=STATE)
    assert state.status_code == 404
    assert state.get_json()["error"]["code"] == "unknown_customer"
    portal = call(client, "/customer-portal", key, method="POST", json={"external_customer_id": "nobody"})
    assert portal.status_code == 404
    assert portal.get_json()["error"]["code"] == "unknown_customer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_customer_id": "c", "success_url": "https://x.example"}, "plan"),
        ({"plan": "pro-monthly", "success_url": "https://x.example"}, "external_customer_id"),
        ({"plan": "pro-monthly", "external_customer_id": "c"}, "success_url"),
        ({"plan": "pro-monthly", "external_customer_id": "c", "success_url": "ftp://x"}, "success_url"),
        ({"plan": "pro-monthly", "external_customer_id": "c", "success_url": "not a url"}, "success_url"),
        (
            {"plan": "pro-monthly", "external_customer_id": "", "success_url": "https://x"},
            "external_customer_id",
        ),
        (
            {"plan": "pro-monthly", "external_customer_id": 7, "success_url": "https://x"},
            "external_customer_id",
        ),
        (
            {"plan": "pro-monthly", "external_customer_id": "c", "success_url": "https://x", "price": 1},
            "price",
        ),
        (
            {"plan": "pro-monthly", "external_customer_id": "c", "success_url": "https://x", "metadata": []},
            "metadata",
        ),
        (
            {
                "plan": "pro-monthly",
                "external_customer_id": "c",
                "success_url": "https://x",
                "metadata": {"nested": {"a": 1}},
            },
            "metadata.nested",
        ),
        (
            {
                "plan": "pro-monthly",
                "external_customer_id": "c",
                "success_url": "https://x",
                "metadata": {"none": None},
            },
            "metadata.none",
        ),
        (
            {
                "plan": "pro-monthly",
                "external_customer_id": "c",
                "success_url": "https://x",
                "customer_email": "not-an-email",
            },
            "customer_email",
        ),
    ],
)
def test_bad_checkout_bodies_are_422_naming_the_field(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, body: dict[str, Any], field: str
) -> None:
    key = make_key(ready.id)
    answer = _checkout(client, key, **body)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]


def test_an_unknown_plan_malformed_json_and_extra_portal_fields(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, control: httpx.Client
) -> None:
    key = make_key(ready.id)
    before = len(_requests(control))
    unknown = _checkout(client, key, plan="gold", external_customer_id="c", success_url="http://localhost/ok")
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["code"] == "unknown_plan"
    assert "gold" in unknown.get_json()["error"]["message"]
    malformed = call(
        client, "/checkouts", key, method="POST", data="{not json", content_type="application/json"
    )
    assert malformed.status_code == 400
    assert malformed.get_json()["error"]["code"] == "bad_request"
    not_json = call(client, "/checkouts", key, method="POST", data="plan=pro", content_type="text/plain")
    assert not_json.status_code == 400
    extra = call(
        client, "/customer-portal", key, method="POST", json={"external_customer_id": "c", "email": "x@y.z"}
    )
    assert extra.status_code == 422 and "email" in extra.get_json()["error"]["message"]
    missing = call(client, "/customer-portal", key, method="POST", json={})
    assert missing.status_code == 422 and "external_customer_id" in missing.get_json()["error"]["message"]
    assert len(_requests(control)) == before  # none of these reached Polar
    assert call(client, "/checkouts", key, method="POST", json={}).status_code == 422
    assert call(client, "/checkouts", method="POST", json={}).status_code == 401


def test_success_url_must_be_https_in_production() -> None:
    body = {"plan": "free", "external_customer_id": "c", "success_url": "http://tenant.example.com/ok"}
    assert billing.checkout_request(body, production=False).success_url == body["success_url"]
    with pytest.raises(InvalidRequest) as refused:
        billing.checkout_request(body, production=True)
    assert refused.value.field == "success_url"
    https = {**body, "success_url": "https://tenant.example.com/ok"}
    assert billing.checkout_request(https, production=True).success_url == https["success_url"]


def test_a_grant_lacking_a_runtime_scope_must_be_upgraded_without_calling_polar(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session, control: httpx.Client
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    assert integration.scopes is not None
    granted = integration.scopes.split()
    assert set(RUNTIME_SCOPES) <= set(granted)  # the connect flow asked for them
    integration.scopes = " ".join(s for s in granted if s not in RUNTIME_SCOPES)
    session.commit()
    before = len(_requests(control))

    answers = [
        _checkout(client, key, plan="free", external_customer_id="c", success_url="https://x.example"),
        call(client, "/customer-portal", key, method="POST", json={"external_customer_id": "c"}),
        call(client, "/customers/c/state", key, template=STATE),
    ]
    needed = ("checkouts:write", "customer_sessions:write", "customers:read")
    for answer, scope in zip(answers, needed, strict=True):
        assert answer.status_code == 409
        error = answer.get_json()["error"]
        assert error["code"] == "permissions_upgrade"
        assert error["message"].startswith("Reconnect Polar to grant ") and scope in error["message"]
    assert len(_requests(control)) == before


def test_runtime_scopes_are_requested_when_connecting(settings: Settings) -> None:
    required = load_catalog(settings.plans_file).required_scopes()
    assert set(RUNTIME_SCOPES) <= set(required)
    assert {
        "checkouts:write",
        "customer_sessions:write",
        "customers:read",
        "subscriptions:read",
        "orders:read",
        "events:write",
    } <= set(required)


def test_polar_failing_is_502_and_polar_busy_is_503_with_retry_after(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, control: httpx.Client
) -> None:
    key = make_key(ready.id)
    control.post(
        "/_emulator/faults", json={"path": "/v1/customers/external/c/state", "status": 500, "count": 10}
    ).raise_for_status()
    failing = call(client, "/customers/c/state", key, template=STATE)
    assert failing.status_code == 502
    assert failing.get_json()["error"]["code"] == "polar_unavailable"
    control.delete("/_emulator/faults").raise_for_status()

    control.post(
        "/_emulator/faults", json={"path": "/v1/checkouts/", "method": "POST", "status": 500, "count": 1}
    ).raise_for_status()
    body = {"plan": "free", "external_customer_id": "c", "success_url": "https://x.example"}
    assert _checkout(client, key, **body).status_code == 502
    control.delete("/_emulator/faults").raise_for_status()

    control.post(
        "/_emulator/faults",
        json={"path": "/v1/customers/external/c/state", "status": 429, "retry_after": 1, "count": 2},
    ).raise_for_status()
    busy = call(client, "/customers/c/state", key, template=STATE)
    assert busy.status_code == 503
    assert busy.get_json()["error"]["code"] == "polar_busy"
    assert int(busy.headers["Retry-After"]) >= 1
