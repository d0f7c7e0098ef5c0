"""Owners create workspaces from the home page; every page has a favicon."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import Membership, Role, User, Workspace
from provisioning.audit.models import AuditEvent
from tests.app.conftest import csrf_token


def test_the_home_page_creates_a_workspace_owned_by_its_creator(
    owner_client: FlaskClient, owner: User, session: Session
) -> None:
    home = owner_client.get("/").get_data(as_text=True)
    assert 'action="/workspaces"' in home and '<label for="name">Workspace name</label>' in home
    token = csrf_token(owner_client, "/")
    response = owner_client.post("/workspaces", data={"csrf_token": token, "name": "  Beta Shop  "})
    assert response.status_code == 303
    session.expire_all()
    workspace = session.scalar(select(Workspace).where(Workspace.name == "Beta Shop"))
    assert workspace is not None
    assert response.headers["Location"] == f"/workspaces/{workspace.id}/polar"
    membership = session.scalar(select(Membership).where(Membership.workspace_id == workspace.id))
    assert membership is not None and membership.user_id == owner.id and membership.role == Role.OWNER
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "owner.create_workspace")) is not None
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Workspace Beta Shop created. Connect Polar to set up its billing." in page


def test_a_blank_name_is_refused_in_words(owner_client: FlaskClient, session: Session) -> None:
    token = csrf_token(owner_client, "/")
    response = owner_client.post("/workspaces", data={"csrf_token": token, "name": "   "})
    assert response.status_code == 400
    assert "Enter a name for the workspace." in response.get_data(as_text=True)


def test_signed_out_visitors_cannot_create_workspaces(client: FlaskClient) -> None:
    token = csrf_token(client, "/login")
    response = client.post("/workspaces", data={"csrf_token": token, "name": "X"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_favicon(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert b"<svg" in response.data
    assert 'rel="icon"' in client.get("/login").get_data(as_text=True)
