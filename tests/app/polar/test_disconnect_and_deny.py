"""Disconnect asks first and says what it does; afterwards the page shows the old connection as
history. Denying on Polar says what actually happened: a first connect stores nothing, a reconnect
leaves the workspace connected."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.config import Settings
from tests.app.conftest import csrf_token
from tests.app.polar.conftest import consent, run_jobs, start_connect, status


def _connected(client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings) -> None:
    answer = consent(start_connect(client, workspace.id))
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(redis_url, settings)
    assert status(client, workspace.id)["status"] == "ready"


def test_disconnect_asks_first_saying_what_happens(
    owner_client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings
) -> None:
    _connected(owner_client, workspace, redis_url, settings)
    page = owner_client.get(f"/workspaces/{workspace.id}/polar").get_data(as_text=True)
    assert f'href="/workspaces/{workspace.id}/polar/disconnect?environment=sandbox"' in page
    confirm = owner_client.get(f"/workspaces/{workspace.id}/polar/disconnect")
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "Disconnect Polar?" in text and "Demo Org" in text
    assert "revokes this platform's access to your Polar account" in text
    assert "removes our webhook endpoint from the organization" in text
    assert "stay in your Polar organization" in text
    assert status(owner_client, workspace.id)["status"] == "ready"  # asking changed nothing


def test_after_disconnect_the_page_shows_history_not_current_state(
    owner_client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings
) -> None:
    _connected(owner_client, workspace, redis_url, settings)
    token = csrf_token(owner_client, f"/workspaces/{workspace.id}/polar/disconnect")
    response = owner_client.post(
        f"/workspaces/{workspace.id}/polar/disconnect", data={"csrf_token": token}, follow_redirects=True
    )
    html = response.get_data(as_text=True)
    assert "Polar is disconnected: access revoked and our webhook endpoint removed." in html
    assert '<span id="status-badge" class="status status-not_connected">Not connected</span>' in html
    assert '<dd id="organization">—</dd>' in html
    assert "History" in html and "It was connected to the Polar organization Demo Org" in html
    assert "Products of the previous connection (kept at Polar)" in html
    assert "No provisioning run since the disconnect." in html
    # Nothing left to disconnect: the confirmation page sends the owner back.
    again = owner_client.get(f"/workspaces/{workspace.id}/polar/disconnect")
    assert again.status_code == 303


def test_denying_a_reconnect_says_the_workspace_stays_connected(
    owner_client: FlaskClient, workspace: Workspace, redis_url: str, settings: Settings, session: Session
) -> None:
    _connected(owner_client, workspace, redis_url, settings)
    denied = consent(start_connect(owner_client, workspace.id), action="deny")
    response = owner_client.get(denied.callback_path)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Polar was not reconnected" in text
    assert "this workspace is still connected to Polar (organization Demo Org)" in text
    assert "nothing was connected" not in text
    assert f'href="/workspaces/{workspace.id}/polar"' in text
    assert status(owner_client, workspace.id)["status"] == "ready"


def test_a_crafted_denial_claims_nothing_about_a_workspace(app: Flask, owner_client: FlaskClient) -> None:
    text = owner_client.get("/polar/callback?error=access_denied&state=forged").get_data(as_text=True)
    assert "You declined access on Polar, so nothing changed." in text
