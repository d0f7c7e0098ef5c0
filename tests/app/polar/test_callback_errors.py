"""Every bad callback: a clear page, and nothing stored."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.models import ProvisioningRun
from tests.app.conftest import Accounts, login
from tests.app.polar.conftest import consent, start_connect


def _stored(session: Session) -> tuple[int, int, int]:
    session.expire_all()
    integrations = session.scalar(select(func.count()).select_from(PolarIntegration))
    tokens = session.scalar(
        select(func.count()).select_from(PolarIntegration).where(PolarIntegration.access_token.is_not(None))
    )
    runs = session.scalar(select(func.count()).select_from(ProvisioningRun))
    return integrations or 0, tokens or 0, runs or 0


def test_denied_consent_shows_a_clear_page(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id), action="deny")
    assert answer.params["error"] == "access_denied"
    response = owner_client.get(answer.callback_path)
    assert response.status_code == 200
    assert "You declined access on Polar" in response.get_data(as_text=True)
    assert _stored(session) == (0, 0, 0)


def test_an_error_parameter_shows_our_words_never_the_query_string(
    owner_client: FlaskClient, session: Session
) -> None:
    crafted = "Your account is locked, call +1 555 0100"
    response = owner_client.get(f"/polar/callback?error=server_error&error_description={crafted}")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert crafted not in body
    assert "Polar had a problem. Try again in a few minutes." in body
    assert _stored(session) == (0, 0, 0)


def test_an_unknown_error_code_is_not_echoed(owner_client: FlaskClient, session: Session) -> None:
    response = owner_client.get("/polar/callback?error=<script>x</script>")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "script" not in body and "Polar did not complete the authorization" in body
    assert _stored(session) == (0, 0, 0)


def test_missing_code_or_state_is_400(owner_client: FlaskClient) -> None:
    assert owner_client.get("/polar/callback").status_code == 400
    assert owner_client.get("/polar/callback?code=abc").status_code == 400


def test_anonymous_callback_goes_to_login(client: FlaskClient) -> None:
    response = client.get("/polar/callback?code=the-code&state=the-state")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/polar/resume"  # never the code or state


def test_tampered_state_is_refused(owner_client: FlaskClient, workspace: Workspace, session: Session) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    state = answer.params["state"]
    tampered = state[:-6] + ("AAAAAA" if not state.endswith("AAAAAA") else "BBBBBB")
    response = owner_client.get(f"/polar/callback?code={answer.params['code']}&state={tampered}")
    assert response.status_code == 400
    assert "could not be verified" in response.get_data(as_text=True)
    assert _stored(session) == (0, 0, 0)


def test_replayed_callback_is_refused(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    assert owner_client.get(answer.callback_path).status_code == 303
    stored = _stored(session)
    assert stored == (1, 1, 1)
    # The same browser, the same code and state, again (the nonce is back in its session).
    with owner_client.session_transaction() as browser:
        browser["polar_connect_nonces"] = [_nonce_of(session, workspace)]
    replay = owner_client.get(answer.callback_path)
    assert replay.status_code == 400
    assert "already used" in replay.get_data(as_text=True)
    assert _stored(session) == stored


def _nonce_of(session: Session, workspace: Workspace) -> str:
    from provisioning.connect.models import PolarConnectAttempt

    return session.scalar(
        select(PolarConnectAttempt.nonce).where(PolarConnectAttempt.workspace_id == workspace.id)
    )


def test_state_from_another_browser_session_is_refused(
    app: Flask, owner_client: FlaskClient, owner: User, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    other_browser = app.test_client()
    login(other_browser, owner.email)
    response = other_browser.get(answer.callback_path)
    assert response.status_code == 400
    assert "another browser session" in response.get_data(as_text=True)
    assert _stored(session) == (0, 0, 0)


def test_callback_by_a_different_user_is_refused(
    app: Flask, owner_client: FlaskClient, accounts: Accounts, workspace: Workspace, session: Session
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    with owner_client.session_transaction() as browser:
        nonces = browser["polar_connect_nonces"]
    intruder = accounts.user("intruder@example.com")
    other = app.test_client()
    login(other, intruder.email)
    with other.session_transaction() as browser:
        browser["polar_connect_nonces"] = nonces  # even with the stolen browser binding
    response = other.get(answer.callback_path)
    assert response.status_code == 400
    assert "another user" in response.get_data(as_text=True)
    assert _stored(session) == (0, 0, 0)
    # The rightful owner can still finish.
    assert owner_client.get(answer.callback_path).status_code == 303


def test_a_reused_code_with_a_fresh_state_is_refused(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    first = consent(start_connect(owner_client, workspace.id))
    assert owner_client.get(first.callback_path).status_code == 303
    second = consent(start_connect(owner_client, workspace.id))
    response = owner_client.get(f"/polar/callback?code={first.params['code']}&state={second.params['state']}")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "did not accept the authorization: the authorization expired or was already used" in body
    assert "invalid_grant" not in body  # Polar's code in words, not as a code
    assert _stored(session)[2] == 1  # no second run


def test_an_owner_demoted_during_consent_cannot_finish_the_connection(
    owner_client: FlaskClient, owner: User, workspace: Workspace, session: Session
) -> None:
    from app.accounts import service

    answer = consent(start_connect(owner_client, workspace.id))
    service.membership(session, workspace.id, owner.id).role = "member"
    session.commit()

    response = owner_client.get(answer.callback_path)

    assert response.status_code == 400
    assert "Only the workspace&#39;s owners can connect Polar" in response.get_data(as_text=True)
    assert _stored(session) == (0, 0, 0)
