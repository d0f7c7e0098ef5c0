"""Members see a workspace's Polar page; owners act; to everyone else it does not exist."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.models import User, Workspace
from tests.app.conftest import Accounts, csrf_token, login

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _paths(workspace_id: str) -> dict[str, str]:
    base = f"/workspaces/{workspace_id}/polar"
    return {
        "page": base,
        "status": f"{base}/status",
        "organization": f"{base}/organization",
        "disconnect": f"{base}/disconnect",
        "switch": f"{base}/switch",
    }


def _posts(workspace_id: str) -> list[str]:
    base = f"/workspaces/{workspace_id}/polar"
    return [f"{base}/connect", f"{base}/disconnect", f"{base}/organization", f"{base}/switch"]


def test_anonymous_is_sent_to_login(client: FlaskClient, workspace: Workspace) -> None:
    for path in _paths(workspace.id).values():
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("target", ["own", "unknown"])
def test_non_members_get_404_everywhere(
    client: FlaskClient, accounts: Accounts, workspace: Workspace, target: str
) -> None:
    stranger = accounts.user("stranger@example.com")
    accounts.workspace("Stranger's", stranger)
    login(client, stranger.email)
    workspace_id = workspace.id if target == "own" else UNKNOWN
    for path in _paths(workspace_id).values():
        assert client.get(path).status_code == 404, path
    token = csrf_token(client, "/")
    for path in _posts(workspace_id):
        assert client.post(path, data={"csrf_token": token}).status_code == 404, path


def test_members_see_but_cannot_act(app: Flask, client: FlaskClient, accounts: Accounts, owner: User) -> None:
    member = accounts.user("member@example.com")
    workspace = accounts.workspace("Shared", owner, members=(member,))
    login(client, member.email)
    page = client.get(f"/workspaces/{workspace.id}/polar")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Not connected" in html and "/polar/connect" not in html
    assert client.get(f"/workspaces/{workspace.id}/polar/status").get_json()["status"] == "not_connected"
    token = csrf_token(client, "/")
    for path in _posts(workspace.id):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert client.get(f"/workspaces/{workspace.id}/polar/organization").status_code == 403
    assert client.get(f"/workspaces/{workspace.id}/polar/disconnect").status_code == 403


def test_owner_sees_the_connect_button(owner_client: FlaskClient, workspace: Workspace) -> None:
    html = owner_client.get(f"/workspaces/{workspace.id}/polar").get_data(as_text=True)
    assert f'action="/workspaces/{workspace.id}/polar/connect"' in html
    assert 'name="csrf_token"' in html
    assert "polar.js" in html and "<script>" not in html


def test_connect_without_csrf_token_is_400(owner_client: FlaskClient, workspace: Workspace) -> None:
    assert owner_client.post(f"/workspaces/{workspace.id}/polar/connect").status_code == 400
