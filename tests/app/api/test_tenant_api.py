"""The tenant API over HTTP: the plans as provisioned and the deploy variables for the connection a
key's mode picks, every answer held to the OpenAPI document, and every way a call can be refused
(a bad or foreign key, a revoked or expired one, one over its rate, a connection not ready, unknown
routes and methods) answered in JSON."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator import EmulatorServer
from polar_emulator.domain.store import collection
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from app.api.openapi import DOCUMENT
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import ApiKey, KeyMode
from provisioning.api_keys.service import ApiKeyRefused
from provisioning.catalog import load_catalog
from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.service import start_run
from tests.app.api.conftest import call
from tests.app.conftest import Accounts, csrf_token, login, make_app
from tests.app.polar.conftest import MakeKey, connect_and_provision, consent, run_jobs, start_connect
from tests.committed import environ_of
from tests.live_polar import LivePolar

UNAUTHORIZED_CODE = "unauthorized"


def _integration(session: Session, workspace_id: str, environment: str = "sandbox") -> PolarIntegration:
    session.expire_all()
    found = session.scalar(
        select(PolarIntegration).where(
            PolarIntegration.workspace_id == workspace_id, PolarIntegration.environment == environment
        )
    )
    assert found is not None
    return found


def test_plans_are_the_catalog_as_provisioned_with_their_polar_products(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session, settings: Settings, emulator
) -> None:
    key = make_key(ready.id)
    response = call(client, "/plans", key)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    integration = _integration(session, ready.id)
    catalog = load_catalog(settings.plans_file)
    assert body["mode"] == "test" and body["environment"] == "sandbox"
    assert body["organization_id"] == integration.polar_org_id
    assert body["catalog_revision"] == integration.catalog_revision == catalog.revision
    assert [p["id"] for p in body["plans"]] == [p.id for p in catalog.plans]
    mapped = {m.plan_id: m.polar_product_id for m in integration.product_mappings}
    assert {p["id"]: p["polar_product_id"] for p in body["plans"]} == mapped
    # Each product id is a product of the workspace's organization at the local Polar.
    products = collection(emulator.store, "products")
    for product_id in mapped.values():
        assert products[product_id]["organization_id"] == integration.polar_org_id

    usage = next(p for p in body["plans"] if p["id"] == "usage")
    assert usage["interval"] == "month" and usage["interval_count"] == 1
    assert usage["prices"] == [
        {"type": "fixed", "currency": "usd", "amount": 900},
        {
            "type": "metered_unit",
            "currency": "usd",
            "unit_amount": "0.05",
            "cap_amount": None,
            "meter": {
                "id": "api-calls",
                "name": "API calls",
                "event_name": "api_call",
                "aggregation": "count",
                "property": None,
            },
        },
    ]
    assert usage["benefits"] == [
        {"id": "core-features", "type": "feature_flag", "description": "Core features"},
        {
            "id": "api-credits",
            "type": "meter_credit",
            "description": "10,000 API calls per month",
            "meter": "api-calls",
            "units": 10000,
            "rollover": False,
        },
    ]
    pro = next(p for p in body["plans"] if p["id"] == "pro-yearly")
    assert pro["prices"] == [{"type": "fixed", "currency": "usd", "amount": 29000}]
    assert pro["benefits"][2]["note"].startswith("Write to support@example.com")


def test_env_as_json_as_a_dotenv_block_and_as_text(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    products = {m.plan_id: m.polar_product_id for m in integration.product_mappings}
    expected = (
        "POLAR_SERVER=sandbox\n"
        f"POLAR_ORGANIZATION_ID={integration.polar_org_id}\n"
        f"POLAR_PRODUCT_FREE={products['free']}\n"
        f"POLAR_PRODUCT_PRO_MONTHLY={products['pro-monthly']}\n"
        f"POLAR_PRODUCT_PRO_YEARLY={products['pro-yearly']}\n"
        f"POLAR_PRODUCT_USAGE={products['usage']}\n"
    )

    as_json = call(client, "/env", key)
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    assert as_json.get_json() == {
        "mode": "test",
        "variables": {
            "POLAR_SERVER": "sandbox",
            "POLAR_ORGANIZATION_ID": integration.polar_org_id,
            "POLAR_PRODUCT_FREE": products["free"],
            "POLAR_PRODUCT_PRO_MONTHLY": products["pro-monthly"],
            "POLAR_PRODUCT_PRO_YEARLY": products["pro-yearly"],
            "POLAR_PRODUCT_USAGE": products["usage"],
        },
        "dotenv": expected,
    }
    for response in (
        call(client, "/env?format=dotenv", key),
        call(client, "/env", key, headers={"Accept": "text/plain"}),
        call(client, "/env", key, headers={"Accept": "text/plain, application/json;q=0.5"}),
    ):
        assert response.status_code == 200
        assert response.content_type == "text/plain; charset=utf-8"
        assert response.get_data(as_text=True) == expected
        assert response.headers["Cache-Control"] == "no-store"
    # ?format wins over Accept; anything else is a 400 in JSON.
    assert (
        call(client, "/env?format=json", key, headers={"Accept": "text/plain"}).mimetype == "application/json"
    )
    wrong = call(client, "/env?format=yaml", key)
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["code"] == "bad_request"


def test_the_billing_page_offers_the_same_block(
    owner_client: FlaskClient, ready: Workspace, make_key: MakeKey, client: FlaskClient
) -> None:
    key = make_key(ready.id)
    dotenv = call(client, "/env?format=dotenv", key).get_data(as_text=True)
    page = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    block = re.search(r'<pre class="dotenv" id="dotenv">(.*?)</pre>', page, re.S)
    assert block is not None and block.group(1) == dotenv


def _headers_for(key: str) -> list[dict[str, str]]:
    lookup = key[len("cp_test_") : len("cp_test_") + 12]
    return [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {key}"},
        {"Authorization": f"Token {key}"},
        {"Authorization": key},
        {"Authorization": f"Bearer {key} extra"},
        {"Authorization": f"Bearer {key[:-1]}"},  # one character short
        {"Authorization": f"Bearer {key[:-1]}A" if not key.endswith("A") else f"Bearer {key[:-1]}B"},
        {"Authorization": f"Bearer cp_live_{key[len('cp_test_') :]}"},  # the same key in another mode
        {"Authorization": f"Bearer cp_test_{'x' * 12}_{'y' * 43}"},  # no such lookup id
        {"Authorization": f"Bearer cp_test_{lookup}"},  # what the billing page shows
        {"Authorization": "Bearer " + "\u00e9" * 40},
        {"X-Api-Key": key},
    ]


def test_every_bad_authorization_gets_the_same_401(
    app: Flask, client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    app.config["API_REFUSED_KEYS_PER_MINUTE"] = 1000  # this test sends many; the next tests the limit
    key = make_key(ready.id)
    bodies = set()
    for headers in _headers_for(key):
        for path in ("/plans", "/env"):
            response = call(client, path, headers=headers)
            assert response.status_code == 401, (headers, path)
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
            assert response.get_json()["error"]["code"] == UNAUTHORIZED_CODE
            bodies.add(response.get_data())
    assert call(client, f"/plans?api_key={key}").status_code == 401  # never from the query string
    assert len(bodies) == 1
    # The scheme is case-insensitive; the key is not.
    assert call(client, "/plans", headers={"Authorization": f"bearer {key}"}).status_code == 200
    assert call(client, "/plans", headers={"Authorization": f"Bearer {key.upper()}"}).status_code == 401


def test_an_address_guessing_keys_is_refused_whatever_key_it_sends(
    app: Flask, client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    app.config["API_REFUSED_KEYS_PER_MINUTE"] = 5
    key = make_key(ready.id)
    for n in range(5):
        assert call(client, "/plans", f"cp_test_{'a' * 12}_{n:043d}").status_code == 401
    guess = call(client, "/plans", f"cp_test_{'a' * 12}_{9:043d}")
    assert guess.status_code == 429
    refused = call(client, "/plans", key)  # even a right guess: refused now
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # 5 a minute: one every 12 s
    other = call(client, "/plans", key, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200  # another address is not held back


def test_revoked_and_expired_keys_get_the_same_401(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    refused = call(client, "/plans").get_data()
    revoked = make_key(ready.id, name="revoked")
    assert call(client, "/plans", revoked).status_code == 200
    row = session.scalar(select(ApiKey).where(ApiKey.name == "revoked"))
    assert row is not None
    row.revoked_at = utcnow()
    session.commit()
    expired = make_key(
        ready.id, name="expired", expires_in_days=1, now=utcnow() - timedelta(days=1, seconds=1)
    )
    fresh = make_key(ready.id, name="fresh", expires_in_days=1, now=utcnow() - timedelta(hours=23))
    for key in (revoked, expired):
        for path in ("/plans", "/env"):
            response = call(client, path, key)
            assert response.status_code == 401
            assert response.get_data() == refused
    assert call(client, "/plans", fresh).status_code == 200


def test_a_key_only_ever_sees_its_own_workspace(
    app: Flask,
    client: FlaskClient,
    ready: Workspace,
    accounts: Accounts,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
) -> None:
    other_owner = accounts.user("other@example.com")
    other = accounts.workspace("Other", other_owner)
    other_client = app.test_client()
    login(other_client, other_owner.email)
    connect_and_provision(other_client, other.id, settings)
    mine, theirs = make_key(ready.id), make_key(other.id)

    my_plans = call(client, "/plans", mine).get_json()
    their_plans = call(client, "/plans", theirs).get_json()
    my_products = {p["polar_product_id"] for p in my_plans["plans"]}
    their_products = {p["polar_product_id"] for p in their_plans["plans"]}
    assert my_products == {m.polar_product_id for m in _integration(session, ready.id).product_mappings}
    assert their_products == {m.polar_product_id for m in _integration(session, other.id).product_mappings}
    assert not my_products & their_products
    their_env = call(client, "/env?format=dotenv", theirs).get_data(as_text=True)
    assert not any(product in their_env for product in my_products)


def test_a_key_over_its_rate_gets_429_with_retry_after(
    app: Flask, client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 3
    busy, calm = make_key(ready.id, name="busy"), make_key(ready.id, name="calm")
    for path in ("/plans", "/env", "/plans"):
        assert call(client, path, busy).status_code == 200
    for path in ("/plans", "/env"):
        over = call(client, path, busy)
        assert over.status_code == 429
        assert over.get_json()["error"]["code"] == "rate_limited"
        assert 1 <= int(over.headers["Retry-After"]) <= 20  # 3 a minute: one every 20 s
    assert call(client, "/plans", calm).status_code == 200  # each key has its own rate
    assert call(client, "/plans").status_code == 401  # no key: never counted against one


def test_a_connection_not_ready_is_409_saying_what_to_do(
    client: FlaskClient, connected: Workspace, make_key: MakeKey
) -> None:
    key = make_key(connected.id)  # its provisioning run is queued, not run yet
    for path in ("/plans", "/env", "/env?format=dotenv"):
        response = call(client, path, key)
        assert response.status_code == 409
        assert response.mimetype == "application/json"
        assert response.get_json()["error"] == {
            "code": "not_ready",
            "message": "Billing is being set up in Polar for test mode: try again in a minute.",
        }


def test_a_test_key_after_test_mode_is_disconnected_is_409(
    owner_client: FlaskClient, client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    key = make_key(ready.id)
    token = csrf_token(owner_client, f"/workspaces/{ready.id}/polar")
    gone = owner_client.post(f"/workspaces/{ready.id}/polar/disconnect", data={"csrf_token": token})
    assert gone.status_code == 303
    response = call(client, "/plans", key)
    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert message.startswith("This workspace has no test mode Polar connection.")
    assert "billing page" in message


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/plans/free", 404),
        ("GET", "", 404),
        ("POST", "/plans", 405),
        ("DELETE", "/env", 405),
        ("PUT", "/openapi.json", 405),
    ],
)
def test_unknown_routes_and_methods_are_json(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, method: str, path: str, status: int
) -> None:
    key = make_key(ready.id)
    response = call(client, path, key, method=method, data={"x": "1"})  # a form, without a CSRF token
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == {404: "not_found", 405: "method_not_allowed"}[status]
    if status == 405:
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    other = client.get("/api/v2/plans")
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"


def test_a_nul_byte_in_the_query_is_a_json_400(
    client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    response = call(client, "/env?format=dot%00env", make_key(ready.id))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_the_api_takes_no_cookies_and_sets_none(
    owner_client: FlaskClient, owner: User, ready: Workspace, make_key: MakeKey
) -> None:
    # The owner is signed in in this client: the session does not authenticate an API call.
    assert call(owner_client, "/plans").status_code == 401
    response = call(owner_client, "/plans", make_key(ready.id))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_the_document_is_served_and_describes_every_route(app: Flask, client: FlaskClient) -> None:
    response = call(client, "/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == DOCUMENT
    assert DOCUMENT["openapi"] == "3.1.0"
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.static"
    }
    assert routes == set(DOCUMENT["paths"])


@pytest.fixture
def live_only(
    settings: Settings,
    live_polar: LivePolar,
    database: Database,
    owner: User,
    workspace: Workspace,
    monkeypatch,
) -> tuple[Flask, Workspace]:
    """A deployment serving both environments, and the owner's workspace connected in live mode only."""
    environ = {**environ_of(settings), **live_polar.env()}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    both = Settings.from_env(environ)
    app = make_app(both, database)
    client = app.test_client()
    login(client, owner.email)
    answer = consent(start_connect(client, workspace.id, "production"))
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(both.redis_url, both)
    return app, workspace


def test_a_live_only_workspace_gets_live_keys_and_no_test_key(
    live_only: tuple[Flask, Workspace], session: Session, production_server: EmulatorServer
) -> None:
    app, workspace = live_only
    both = app.extensions["connect_polar.settings"]
    with pytest.raises(ApiKeyRefused, match="no test-mode Polar connection") as refused:
        api_keys.create(session, both, workspace_id=workspace.id, name="t", mode=KeyMode.TEST)
    assert refused.value.field == "mode"
    cli = app.test_cli_runner().invoke(
        args=["api-keys", "create", workspace.id, "--name", "t", "--mode", "test"]
    )
    assert cli.exit_code == 1 and "Connect test mode on the billing page first" in cli.stderr

    live = api_keys.create(session, both, workspace_id=workspace.id, name="live", mode=KeyMode.LIVE)
    session.commit()
    assert live.plaintext.startswith("cp_live_")
    client = app.test_client()
    plans = call(client, "/plans", live.plaintext).get_json()
    integration = _integration(session, workspace.id, "production")
    assert plans["mode"] == "live" and plans["environment"] == "production"
    assert plans["organization_id"] == integration.polar_org_id
    products = collection(production_server.store, "products")
    assert {p["polar_product_id"] for p in plans["plans"]} <= set(products)
    dotenv = call(client, "/env?format=dotenv", live.plaintext).get_data(as_text=True)
    assert dotenv.startswith(f"POLAR_SERVER=production\nPOLAR_ORGANIZATION_ID={integration.polar_org_id}\n")


def test_a_provisioned_connection_keeps_answering_while_a_run_updates_it_or_after_one_failed(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    before = call(client, "/plans", key).get_json()
    integration = session.scalar(select(PolarIntegration).where(PolarIntegration.workspace_id == ready.id))
    assert integration is not None
    assert start_run(session, integration, trigger="rollout").created
    integration.status = IntegrationStatus.PROVISIONING  # as the worker sets it when it claims the run
    session.commit()

    during = call(client, "/plans", key)
    assert during.status_code == 200 and during.get_json() == before
    integration.status = IntegrationStatus.FAILED
    session.commit()
    assert call(client, "/env", key).status_code == 200
    integration.status = IntegrationStatus.NEEDS_RECONNECT  # Polar refuses its token: no answer
    session.commit()
    assert call(client, "/plans", key).get_json()["error"]["code"] == "not_ready"
