"""Several connects in flight in one browser: each attempt has its own nonce in the browser session,
single-use; finishing one never invalidates another, except that an older attempt of the same
workspace and environment is refused once a newer one has finished (the newer wins)."""

from __future__ import annotations

from flask.testing import FlaskClient
from polar_emulator.config import DEMO_USER_EMAIL, MULTI_ORG_USER_EMAIL
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from app.polar.views import MAX_PENDING_CONNECTS
from provisioning.integrations.models import PolarIntegration
from tests.app.conftest import Accounts, csrf_token
from tests.app.polar.conftest import consent, start_connect


def _pending(client: FlaskClient) -> list[str]:
    with client.session_transaction() as browser:
        return list(browser.get("polar_connect_nonces", []))


def _connected_user(session: Session, workspace_id: str) -> str | None:
    session.expire_all()
    integration = session.scalar(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id)
    )
    return integration.polar_user_id if integration else None


def test_two_workspaces_connect_side_by_side(
    owner_client: FlaskClient, accounts: Accounts, owner: User, workspace: Workspace, session: Session
) -> None:
    other = accounts.workspace("Second", owner)
    first = consent(start_connect(owner_client, workspace.id))
    second = consent(start_connect(owner_client, other.id))
    assert len(_pending(owner_client)) == 2
    assert owner_client.get(second.callback_path).status_code == 303
    assert len(_pending(owner_client)) == 1  # only the finished attempt left the session
    assert owner_client.get(first.callback_path).status_code == 303
    assert _pending(owner_client) == []
    assert _connected_user(session, workspace.id) and _connected_user(session, other.id)


def test_same_connection_older_first_then_newer_both_finish_and_the_newer_wins(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    older = consent(start_connect(owner_client, workspace.id), user=DEMO_USER_EMAIL)
    newer = consent(start_connect(owner_client, workspace.id), user=MULTI_ORG_USER_EMAIL)
    assert owner_client.get(older.callback_path).status_code == 303
    demo = _connected_user(session, workspace.id)
    # The newer one is another Polar account: it waits for the owner to confirm the switch.
    held = owner_client.get(newer.callback_path)
    assert held.status_code == 303 and held.headers["Location"] == f"/workspaces/{workspace.id}/polar/switch"
    assert _connected_user(session, workspace.id) == demo
    token = csrf_token(owner_client, held.headers["Location"])
    switched = owner_client.post(held.headers["Location"], data={"csrf_token": token, "decision": "switch"})
    assert switched.status_code == 303
    assert _connected_user(session, workspace.id) not in (None, demo)


def test_same_connection_newer_first_then_the_older_says_it_was_replaced(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    older = consent(start_connect(owner_client, workspace.id), user=MULTI_ORG_USER_EMAIL)
    newer = consent(start_connect(owner_client, workspace.id), user=DEMO_USER_EMAIL)
    assert owner_client.get(newer.callback_path).status_code == 303
    demo = _connected_user(session, workspace.id)
    response = owner_client.get(older.callback_path)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "A newer connect replaced this one" in text
    assert "that newer connection has already finished, so this older one was not used" in text
    assert f"/workspaces/{workspace.id}/polar" in text  # back to the billing page
    assert _connected_user(session, workspace.id) == demo
    assert _pending(owner_client) == []


def test_a_foreign_or_stale_callback_leaves_pending_connects_alone(
    owner_client: FlaskClient, workspace: Workspace
) -> None:
    answer = consent(start_connect(owner_client, workspace.id))
    pending = _pending(owner_client)
    bad = owner_client.get(f"/polar/callback?code={answer.params['code']}&state=not-ours")
    assert bad.status_code == 400
    assert _pending(owner_client) == pending
    assert owner_client.get(answer.callback_path).status_code == 303


def test_pending_connects_are_bounded_oldest_dropped(owner_client: FlaskClient, workspace: Workspace) -> None:
    urls = [start_connect(owner_client, workspace.id) for _ in range(MAX_PENDING_CONNECTS + 1)]
    assert len(_pending(owner_client)) == MAX_PENDING_CONNECTS
    oldest = consent(urls[0])
    response = owner_client.get(oldest.callback_path)
    assert response.status_code == 400
    assert "another browser session" in response.get_data(as_text=True)
    newest = consent(urls[-1])
    assert owner_client.get(newest.callback_path).status_code == 303
