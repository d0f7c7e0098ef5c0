"""Polar's callback arriving while signed out: its code and state never go into another URL; the
owner signs in and the connect finishes, or, when the browser no longer holds the attempt (signed
out on purpose), is restarted with one click."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.accounts.models import User, UserSession, Workspace
from provisioning.db import utcnow
from tests.app.conftest import PASSWORD, csrf_token
from tests.app.polar.conftest import consent, start_connect, status


def _expire_sessions(session: Session, user: User) -> None:
    """The owner's sign-in ends server-side (as when it expires); the browser keeps its cookie."""
    session.execute(update(UserSession).where(UserSession.user_id == user.id).values(revoked_at=utcnow()))
    session.commit()


def _sign_in_to(client: FlaskClient, email: str, next_url: str) -> str:
    response = client.post(
        f"/login?next={next_url}",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def test_a_signed_out_callback_never_puts_code_or_state_in_a_url(
    owner_client: FlaskClient, owner: User, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    _expire_sessions(session, owner)
    response = owner_client.get(answer.callback_path)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location == "/login?next=/polar/resume"
    assert answer.params["code"] not in location and answer.params["state"] not in location
    login_page = owner_client.get(location).get_data(as_text=True)
    assert "Sign in to finish connecting Polar." in login_page


def test_signing_in_finishes_the_connect(
    owner_client: FlaskClient, owner: User, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    _expire_sessions(session, owner)
    assert owner_client.get(answer.callback_path).headers["Location"] == "/login?next=/polar/resume"
    assert _sign_in_to(owner_client, owner.email, "/polar/resume") == "/polar/resume"
    finished = owner_client.get("/polar/resume")
    assert finished.status_code == 303, finished.get_data(as_text=True)
    assert finished.headers["Location"] == f"/workspaces/{workspace.id}/polar"
    assert status(owner_client, workspace.id)["status"] == "provisioning"
    # Once: the answer left the session.
    again = owner_client.get("/polar/resume")
    assert again.status_code == 303 and again.headers["Location"] == "/"


def test_signed_out_on_purpose_the_connect_restarts_with_one_click(
    owner_client: FlaskClient, owner: User, workspace: Workspace
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    owner_client.post("/logout", data={"csrf_token": csrf_token(owner_client, "/")})
    owner_client.get(answer.callback_path)
    _sign_in_to(owner_client, owner.email, "/polar/resume")
    response = owner_client.get("/polar/resume")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "You were signed out while Polar asked for your consent" in text
    assert f'action="/workspaces/{workspace.id}/polar/connect"' in text
    assert "Connect Polar again" in text
    token = csrf_token(owner_client, "/")
    again = owner_client.post(f"/workspaces/{workspace.id}/polar/connect", data={"csrf_token": token})
    assert again.status_code == 303 and "/oauth2/authorize" in again.headers["Location"]


def test_resume_without_a_waiting_callback_goes_home(owner_client: FlaskClient) -> None:
    response = owner_client.get("/polar/resume")
    assert response.status_code == 303 and response.headers["Location"] == "/"
