"""From the Connect Polar button to ``ready``: our app, the emulator over HTTP, a real RQ worker."""

from __future__ import annotations

import re

import httpx
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_REDIRECT_URI, MULTI_ORG_USER_EMAIL
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import service
from app.accounts.models import Workspace
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import access_token, decrypt_secret, refresh_token
from tests.app.conftest import PASSWORD, csrf_token, login, make_app
from tests.app.polar.conftest import consent, run_jobs, start_connect, status


def test_connect_redirects_to_polar_with_pkce_state_and_scopes(
    owner_client: FlaskClient, workspace: Workspace, emulator
) -> None:
    url = start_connect(owner_client, workspace.id)
    parts = httpx.URL(url)
    assert str(parts).startswith(f"{emulator.url}/oauth2/authorize?")
    params = dict(parts.params)
    assert params["response_type"] == "code"
    assert params["client_id"] == DEMO_CLIENT_ID
    assert params["redirect_uri"] == DEMO_REDIRECT_URI
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) >= 43
    assert params["state"]
    scopes = params["scope"].split()
    for scope in ("organizations:read", "products:write", "webhooks:write"):
        assert scope in scopes
    with owner_client.session_transaction() as browser:
        (nonce,) = browser["polar_connect_nonces"]
        assert nonce not in params["state"]  # the state is encrypted


def _assert_no_secrets(client: FlaskClient, workspace_id: str, session: Session, settings: Settings) -> None:
    session.expire_all()
    integration = session.scalar(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id)
    )
    assert integration is not None and integration.access_token and integration.refresh_token
    secrets = [integration.access_token, integration.refresh_token]
    secrets += [access_token(settings, integration), refresh_token(settings, integration)]
    if integration.webhook_secret:
        webhook_secret = decrypt_secret(
            settings, integration.id, "webhook_secret", integration.webhook_secret
        )
        secrets += [integration.webhook_secret, webhook_secret]
    assert all(s.startswith("polar_") for s in secrets[2:4])  # plaintext tokens look like Polar's
    assert not integration.access_token.startswith("polar_")  # stored encrypted
    bodies = [
        client.get(f"/workspaces/{workspace_id}/polar/status").get_data(as_text=True),
        client.get(f"/workspaces/{workspace_id}/polar").get_data(as_text=True),
    ]
    for body in bodies:
        for secret in secrets:
            assert secret not in body


def test_the_whole_flow_reaches_ready(
    owner_client: FlaskClient, workspace: Workspace, session: Session, settings: Settings, redis_url: str
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    callback = owner_client.get(answer.callback_path)
    assert callback.status_code == 303, callback.get_data(as_text=True)
    assert callback.headers["Location"] == f"/workspaces/{workspace.id}/polar"
    assert callback.headers["Referrer-Policy"] == "no-referrer"
    assert status(owner_client, workspace.id)["status"] == "provisioning"

    run_jobs(redis_url, settings)

    snapshot = status(owner_client, workspace.id)
    assert snapshot["status"] == "ready", snapshot
    assert snapshot["organization"]["id"]
    assert snapshot["webhook_endpoint_id"]
    assert len(snapshot["products"]) >= 4
    assert all(p["polar_product_id"] for p in snapshot["products"])
    assert [s["status"] for s in snapshot["steps"]] == ["succeeded"] * len(snapshot["steps"])
    page = owner_client.get(f"/workspaces/{workspace.id}/polar").get_data(as_text=True)
    assert "Ready" in page and snapshot["webhook_endpoint_id"] in page
    assert snapshot["products"][0]["polar_product_id"] in page
    _assert_no_secrets(owner_client, workspace.id, session, settings)


def test_the_whole_flow_on_sqlite(sqlite_database: Database, settings: Settings, redis_url: str) -> None:
    with sqlite_database.transaction() as session:
        user = service.create_user(session, "local@example.com", PASSWORD)
        workspace_id = service.create_workspace(session, "Local", user).id
    app: Flask = make_app(settings, sqlite_database)
    client = app.test_client()
    login(client, "local@example.com")
    answer = consent(start_connect(client, workspace_id))
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(redis_url, settings)
    snapshot = status(client, workspace_id)
    assert snapshot["status"] == "ready", snapshot
    assert snapshot["webhook_endpoint_id"] and snapshot["products"]


def test_several_organizations_ask_the_owner_to_choose(
    owner_client: FlaskClient, workspace: Workspace, settings: Settings, redis_url: str
) -> None:
    answer = consent(start_connect(owner_client, workspace.id), user=MULTI_ORG_USER_EMAIL)
    callback = owner_client.get(answer.callback_path)
    assert callback.status_code == 303
    assert callback.headers["Location"] == f"/workspaces/{workspace.id}/polar/organization"
    snapshot = status(owner_client, workspace.id)
    assert snapshot["status"] == "awaiting_organization"
    assert snapshot["steps"] == []

    chooser = owner_client.get(f"/workspaces/{workspace.id}/polar/organization")
    assert chooser.status_code == 200
    # The organizations Polar's grant reaches are offered to the owner only, never in the status JSON.
    assert "reachable_organizations" not in snapshot
    offered = re.findall(
        r'name="organization_id"[^>]*value="([0-9a-f-]{36})"', chooser.get_data(as_text=True)
    )
    assert len(offered) == 2

    chosen = offered[1]
    token = csrf_token(owner_client, f"/workspaces/{workspace.id}/polar/organization")
    response = owner_client.post(
        f"/workspaces/{workspace.id}/polar/organization",
        data={"organization_id": chosen, "csrf_token": token},
    )
    assert response.status_code == 303
    run_jobs(redis_url, settings)
    snapshot = status(owner_client, workspace.id)
    assert snapshot["status"] == "ready", snapshot
    assert snapshot["organization"]["id"] == chosen


def test_an_unknown_organization_is_refused(owner_client: FlaskClient, workspace: Workspace) -> None:
    answer = consent(start_connect(owner_client, workspace.id), user=MULTI_ORG_USER_EMAIL)
    owner_client.get(answer.callback_path)
    token = csrf_token(owner_client, f"/workspaces/{workspace.id}/polar/organization")
    response = owner_client.post(
        f"/workspaces/{workspace.id}/polar/organization",
        data={"organization_id": "org_nope", "csrf_token": token},
    )
    assert response.status_code == 200  # the form again, with its error
    assert status(owner_client, workspace.id)["status"] == "awaiting_organization"


def test_a_user_without_organizations_gets_one_created(
    owner_client: FlaskClient, workspace: Workspace, control: httpx.Client, settings: Settings, redis_url: str
) -> None:
    control.post("/_emulator/users", json={"email": "solo@polar.local"}).raise_for_status()
    answer = consent(start_connect(owner_client, workspace.id), user="solo@polar.local")
    assert owner_client.get(answer.callback_path).status_code == 303
    run_jobs(redis_url, settings)
    snapshot = status(owner_client, workspace.id)
    assert snapshot["status"] == "ready", snapshot
    assert snapshot["organization"]["name"] == workspace.name


def test_disconnect_forgets_the_tokens(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    owner_client.get(answer.callback_path)
    token = csrf_token(owner_client, f"/workspaces/{workspace.id}/polar")
    response = owner_client.post(f"/workspaces/{workspace.id}/polar/disconnect", data={"csrf_token": token})
    assert response.status_code == 303
    snapshot = status(owner_client, workspace.id)
    assert snapshot["status"] == "not_connected"
    assert snapshot["steps"] == [] and snapshot["run"] is None  # the cancelled run is not shown
    session.expire_all()
    integration = session.scalar(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace.id)
    )
    assert integration is not None and integration.access_token is None and integration.refresh_token is None


def test_the_page_names_products_from_the_configured_plans_file(
    owner: object,
    workspace: Workspace,
    database: Database,
    settings: Settings,
    redis_url: str,
    tmp_path,
    monkeypatch,
) -> None:

    from provisioning.config import DEFAULT_PLANS_FILE

    plans = tmp_path / "plans.toml"
    plans.write_text(
        DEFAULT_PLANS_FILE.read_text().replace('name = "Pro (monthly)"', 'name = "Team (monthly)"')
    )
    monkeypatch.setenv("PLANS_FILE", str(plans))  # the worker reads its settings from the environment
    custom = settings.model_copy(update={"plans_file": plans})
    client = make_app(custom, database).test_client()
    login(client, "owner@example.com")
    assert client.get(consent(start_connect(client, workspace.id)).callback_path).status_code == 303
    run_jobs(redis_url, custom)

    snapshot = status(client, workspace.id)
    assert snapshot["status"] == "ready"
    assert "Team (monthly)" in {p["name"] for p in snapshot["products"]}
