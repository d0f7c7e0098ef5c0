"""The billing page with test mode and live mode: both shown, each connected through its own
callback path and its own local Polar, and "Go live" provisioning production."""

from __future__ import annotations

import re

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.models import Workspace
from provisioning.config import Settings
from provisioning.db import Database
from tests.app.conftest import make_app
from tests.app.polar.conftest import consent, run_jobs, start_connect
from tests.committed import environ_of
from tests.live_polar import LivePolar


@pytest.fixture
def both(settings: Settings, live_polar: LivePolar, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The deployment serves sandbox and production (exported too: the in-process worker reads it)."""
    environ = {**environ_of(settings), **live_polar.env()}
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env(environ)


@pytest.fixture
def both_client(both: Settings, database: Database, owner) -> FlaskClient:
    from tests.app.conftest import login

    app: Flask = make_app(both, database)
    client = app.test_client()
    login(client, owner.email)
    return client


def _status(client: FlaskClient, workspace_id: str, environment: str) -> dict:
    response = client.get(f"/workspaces/{workspace_id}/polar/status?environment={environment}")
    assert response.status_code == 200
    return response.get_json()


def test_the_page_offers_test_mode_and_go_live(both_client: FlaskClient, workspace: Workspace) -> None:
    response = both_client.get(f"/workspaces/{workspace.id}/polar")
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"  # it shows connection data
    page = response.get_data(as_text=True)
    assert "Test mode" in page and "Live mode" in page
    assert "Connect test mode" in page
    live = both_client.get(f"/workspaces/{workspace.id}/polar?environment=production").get_data(as_text=True)
    assert "Go live" in live
    assert re.search(r'name="environment" type="hidden" value="production"', live)
    assert both_client.get(f"/workspaces/{workspace.id}/polar?environment=staging").status_code == 404


def test_going_live_connects_production_through_its_own_callback(
    both_client: FlaskClient, workspace: Workspace, both: Settings, live_polar: LivePolar, emulator
) -> None:
    # Test mode first, at the sandbox's callback path.
    answer = consent(start_connect(both_client, workspace.id, "sandbox"))
    assert answer.path == "/polar/callback"
    assert both_client.get(answer.callback_path).status_code == 303
    run_jobs(both.redis_url, both)
    assert _status(both_client, workspace.id, "sandbox")["status"] == "ready"

    # Go live: production's own Polar, client and callback path.
    authorize = start_connect(both_client, workspace.id, "production")
    assert authorize.startswith(f"{live_polar.url}/oauth2/authorize?")
    assert dict(httpx.URL(authorize).params)["client_id"] == live_polar.client_id
    answer = consent(authorize)
    assert answer.path == "/polar/callback/production"
    # The production code presented at the sandbox's callback is refused, and nothing is stored.
    wrong = both_client.get(f"/polar/callback?{answer.query}")
    assert wrong.status_code == 400
    assert "another Polar environment" in wrong.get_data(as_text=True)
    assert _status(both_client, workspace.id, "production")["status"] == "not_connected"

    answer = consent(start_connect(both_client, workspace.id, "production"))
    callback = both_client.get(answer.callback_path)
    assert callback.status_code == 303
    assert callback.headers["Location"] == f"/workspaces/{workspace.id}/polar?environment=production"
    assert callback.headers["Referrer-Policy"] == "no-referrer"
    run_jobs(both.redis_url, both)

    live = _status(both_client, workspace.id, "production")
    sandbox = _status(both_client, workspace.id, "sandbox")
    assert live["status"] == sandbox["status"] == "ready"
    assert live["catalog_revision"] == sandbox["catalog_revision"]
    assert live["organization"]["id"] != sandbox["organization"]["id"]
    assert all(r["status"] != 401 for r in live_polar.requests())

    # Disconnecting live mode leaves test mode connected.
    page = both_client.get(f"/workspaces/{workspace.id}/polar?environment=production").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    gone = both_client.post(
        f"/workspaces/{workspace.id}/polar/disconnect",
        data={"csrf_token": token, "environment": "production"},
    )
    assert gone.status_code == 303
    assert _status(both_client, workspace.id, "production")["status"] == "not_connected"
    assert _status(both_client, workspace.id, "sandbox")["status"] == "ready"
