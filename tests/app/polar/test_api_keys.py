"""The owners' API keys on the billing page: created with a name, a mode and an expiry, shown once
on the answer page itself (never in the session or a flash), stored as a hash, listed, revoked after
confirming; audited. Members see the list and act on nothing; another workspace's keys do not exist."""

from __future__ import annotations

import hashlib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from provisioning.api_keys.models import ApiKey
from provisioning.audit.models import AuditEvent
from provisioning.config import Settings
from tests.app.api.conftest import call
from tests.app.conftest import Accounts, csrf_token, login
from tests.app.polar.conftest import MakeKey, connect_and_provision

KEY_RE = re.compile(r'id="new-key"[^>]*value="(cp_(test|live)_[a-z0-9]{12}_[A-Za-z0-9_-]{43})"')


def _create(client: FlaskClient, workspace_id: str, **fields: str):
    token = csrf_token(client, f"/workspaces/{workspace_id}/polar")
    data = {"csrf_token": token, "name": "Production server", "mode": "test", "expires": "", **fields}
    return client.post(f"/workspaces/{workspace_id}/polar/api-keys", data=data)


def _keys(session: Session, workspace_id: str) -> list[ApiKey]:
    session.expire_all()
    return list(session.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace_id)))


def _audit(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_new_key_is_shown_once_and_stored_as_a_hash(
    app: Flask, owner_client: FlaskClient, ready: Workspace, session: Session
) -> None:
    response = _create(owner_client, ready.id, expires="90")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    match = KEY_RE.search(page)
    assert match, page
    plaintext = match.group(1)
    assert plaintext.startswith("cp_test_")
    assert "only time it is shown" in page and "Copy" in page
    # Never in a cookie: neither set by this answer nor in the session the browser holds.
    assert all(plaintext not in h for h in response.headers.getlist("Set-Cookie"))
    with owner_client.session_transaction() as flask_session:
        assert plaintext not in repr(dict(flask_session))

    (key,) = _keys(session, ready.id)
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert key.lookup_id == plaintext[8:20] and key.name == "Production server"
    assert key.expires_at is not None and (key.expires_at - key.created_at).days == 90
    assert plaintext not in repr([getattr(key, c.key) for c in ApiKey.__table__.columns])
    # The key works at once; the billing page shows its prefix, never the key.
    assert call(app.test_client(), "/plans", plaintext).status_code == 200
    billing = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    assert plaintext not in billing
    assert f"{key.display_prefix}…" in billing and "Production server" in billing

    (event,) = _audit(session, "api_key.create")
    assert event.workspace_id == ready.id and event.target_ids == {"api_key_id": key.id}
    assert event.details["prefix"] == key.display_prefix and event.details["mode"] == "test"
    assert plaintext not in repr(event.details) and event.actor_email == "owner@example.com"


def test_the_create_form_sent_again_makes_no_second_key_and_shows_none(
    app: Flask, owner_client: FlaskClient, ready: Workspace, session: Session
) -> None:
    """A reload of the answer page (the browser sends the form again) or a double click."""
    first = _create(owner_client, ready.id, nonce="form-1")
    assert first.status_code == 200 and KEY_RE.search(first.get_data(as_text=True))

    again = _create(owner_client, ready.id, nonce="form-1")

    assert again.status_code == 303
    assert KEY_RE.search(again.get_data(as_text=True)) is None
    assert len(_keys(session, ready.id)) == 1
    page = owner_client.get(again.headers["Location"]).get_data(as_text=True)
    assert "already created from this form" in page and KEY_RE.search(page) is None
    assert _create(owner_client, ready.id, nonce="form-2").status_code == 200  # a new form: a new key
    assert len(_keys(session, ready.id)) == 2


def test_the_list_shows_each_key_and_its_state(
    app: Flask, owner_client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    used = make_key(ready.id, name="used key")
    make_key(ready.id, name="expiring key", expires_in_days=30)
    revoked = make_key(ready.id, name="revoked key")
    call(app.test_client(), "/plans", used)
    row = session.scalar(select(ApiKey).where(ApiKey.name == "revoked key"))
    assert row is not None and revoked.startswith(row.display_prefix)
    from provisioning.api_keys import service

    service.revoke(session, row)
    session.commit()

    page = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    rows = {}
    for row_html in re.findall(r'<tr class="api-key.*?</tr>', page, re.S):
        cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)]
        rows[cells[0]] = cells  # name, mode, key, created, last used, expires, status
    assert set(rows) == {"used key", "expiring key", "revoked key"}
    assert rows["used key"][1] == "Test" and rows["used key"][2].startswith("<code>cp_test_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["used key"][4])  # last used
    assert rows["expiring key"][4] == "never" and re.fullmatch(r"\d{4}-\d\d-\d\d", rows["expiring key"][5])
    assert ">Revoke</a>" in rows["expiring key"][6]
    assert rows["revoked key"][6].startswith("Revoked ") and "href" not in rows["revoked key"][6]
    assert 'class="api-key inactive"' in page


def test_revoking_asks_first_then_the_key_is_refused(
    app: Flask, owner_client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    plaintext = make_key(ready.id, name="old server")
    (key,) = _keys(session, ready.id)
    url = f"/workspaces/{ready.id}/polar/api-keys/{key.id}/revoke"

    confirm = owner_client.get(url)
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "Revoke the API key old server?" in text and "refused (401)" in text
    assert _keys(session, ready.id)[0].revoked_at is None  # asking changed nothing

    done = owner_client.post(url, data={"csrf_token": csrf_token(owner_client, url)})
    assert done.status_code == 303
    assert done.headers["Location"] == f"/workspaces/{ready.id}/polar#api-keys"
    assert _keys(session, ready.id)[0].revoked_at is not None
    assert call(app.test_client(), "/plans", plaintext).status_code == 401
    page = owner_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "The API key old server is revoked" in page
    (event,) = _audit(session, "api_key.revoke")
    assert event.target_ids == {"api_key_id": key.id}

    # Once is enough: again changes nothing and records nothing.
    assert owner_client.get(url).status_code == 303
    again = owner_client.post(
        url, data={"csrf_token": csrf_token(owner_client, f"/workspaces/{ready.id}/polar")}
    )
    assert again.status_code == 303
    assert len(_audit(session, "api_key.revoke")) == 1


def test_a_revoke_without_a_csrf_token_is_refused(
    owner_client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    make_key(ready.id)
    (key,) = _keys(session, ready.id)
    response = owner_client.post(f"/workspaces/{ready.id}/polar/api-keys/{key.id}/revoke", data={})
    assert response.status_code == 400
    assert _keys(session, ready.id)[0].revoked_at is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "Give the key a name, such as where it is used."),
        ({"name": "x" * 101}, "The name is too long: at most 100 characters."),
        ({"name": "tab\there"}, "The name contains characters that are not allowed."),
        ({"mode": "staging"}, "Choose test or live mode."),
        ({"expires": "12"}, "Choose when the key expires."),
        ({"mode": "live"}, "This workspace has no live-mode Polar connection"),
    ],
)
def test_a_refused_key_says_why_and_creates_nothing(
    owner_client: FlaskClient, connected: Workspace, session: Session, fields: dict[str, str], message: str
) -> None:
    response = _create(owner_client, connected.id, **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page.replace("&#39;", "'")
    assert 'class="field-error" id="key-' in page and 'aria-invalid="true"' in page
    assert not KEY_RE.search(page)
    assert _keys(session, connected.id) == []


@pytest.mark.parametrize("field", ["name", "mode", "expires", "environment"])
def test_a_nul_byte_in_the_new_key_form_is_a_400(
    owner_client: FlaskClient, connected: Workspace, session: Session, field: str
) -> None:
    response = _create(owner_client, connected.id, **{field: "ab\x00c"})
    assert response.status_code == 400
    assert "not allowed" in response.get_data(as_text=True)
    assert _keys(session, connected.id) == []


def test_without_a_connection_no_key_can_be_created(
    owner_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    page = owner_client.get(f"/workspaces/{workspace.id}/polar").get_data(as_text=True)
    assert "Connect Polar first" in page and "Create API key" not in page
    response = _create(owner_client, workspace.id)
    assert response.status_code == 400
    assert "no test-mode Polar connection" in response.get_data(as_text=True)
    assert _keys(session, workspace.id) == []


def test_members_see_the_list_and_act_on_nothing(
    app: Flask, accounts: Accounts, owner: User, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    member = accounts.user("member@example.com")
    from app.accounts import service as accounts_service

    accounts_service.add_member(session, ready, member)
    session.commit()
    make_key(ready.id, name="owner's key")
    (key,) = _keys(session, ready.id)
    client = app.test_client()
    login(client, member.email)

    page = client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    assert "owner&#39;s key" in page and f"{key.display_prefix}…" in page
    assert "Create API key" not in page and "/revoke" not in page
    assert "Only the workspace's owners can create or revoke API keys." in page
    assert _create(client, ready.id).status_code == 403
    revoke = f"/workspaces/{ready.id}/polar/api-keys/{key.id}/revoke"
    assert client.get(revoke).status_code == 403
    assert (
        client.post(
            revoke, data={"csrf_token": csrf_token(client, f"/workspaces/{ready.id}/polar")}
        ).status_code
        == 403
    )
    assert _keys(session, ready.id)[0].revoked_at is None


def test_another_workspaces_keys_do_not_exist_here(
    app: Flask,
    owner_client: FlaskClient,
    ready: Workspace,
    accounts: Accounts,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
) -> None:
    stranger = accounts.user("stranger@example.com")
    theirs = accounts.workspace("Theirs", stranger)
    their_client = app.test_client()
    login(their_client, stranger.email)
    connect_and_provision(their_client, theirs.id, settings)
    make_key(theirs.id, name="their secret key")
    (their_key,) = _keys(session, theirs.id)

    page = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    assert "their secret key" not in page and their_key.lookup_id not in page
    # Their key under my workspace's URL, and their workspace's URLs: 404 both.
    for url in (
        f"/workspaces/{ready.id}/polar/api-keys/{their_key.id}/revoke",
        f"/workspaces/{theirs.id}/polar/api-keys/{their_key.id}/revoke",
    ):
        assert owner_client.get(url).status_code == 404
        token = csrf_token(owner_client, f"/workspaces/{ready.id}/polar")
        assert owner_client.post(url, data={"csrf_token": token}).status_code == 404
    assert _create(owner_client, theirs.id).status_code == 404
    assert _keys(session, theirs.id)[0].revoked_at is None


def test_the_page_offers_only_the_modes_the_workspace_has(
    owner_client: FlaskClient, ready: Workspace
) -> None:
    page = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    select_html = re.search(r'<select id="key-mode".*?</select>', page, re.S)
    assert select_html is not None
    assert re.findall(r'<option value="(\w+)"', select_html.group(0)) == ["test"]
    assert '<label for="key-name">Name</label>' in page
    assert '<label for="key-mode">Mode</label>' in page and '<label for="key-expires">Expires</label>' in page


# -- flask api-keys ------------------------------------------------------------------------------


def test_cli_creates_a_key_printed_alone_on_stdouts_last_line(
    app: Flask, client: FlaskClient, ready: Workspace, session: Session
) -> None:
    result = app.test_cli_runner().invoke(
        args=["api-keys", "create", ready.id, "--name", "ci deploy", "--expires-in-days", "30"]
    )
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.splitlines()[-1]
    assert result.stdout == plaintext + "\n"  # only the key on stdout
    assert re.fullmatch(r"cp_test_[a-z0-9]{12}_[A-Za-z0-9_-]{43}", plaintext)
    assert "shown this once" in result.stderr and "expires" in result.stderr
    assert call(client, "/plans", plaintext).status_code == 200
    (key,) = _keys(session, ready.id)
    assert key.name == "ci deploy" and key.created_by_user_id is None
    (event,) = _audit(session, "api_key.create")
    assert event.actor_email is not None and event.actor_email.startswith("cli:")
    assert plaintext not in repr(event.details)

    listed = app.test_cli_runner().invoke(args=["api-keys", "list", ready.id])
    assert listed.exit_code == 0 and key.id in listed.stdout and plaintext not in listed.stdout

    revoked = app.test_cli_runner().invoke(args=["api-keys", "revoke", key.id, "--reason", "rotated"])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked API key {key.id}" in revoked.stdout
    assert call(client, "/plans", plaintext).status_code == 401
    (event,) = _audit(session, "api_key.revoke")
    assert event.reason == "rotated" and event.target_ids == {"api_key_id": key.id}
    again = app.test_cli_runner().invoke(args=["api-keys", "revoke", key.display_prefix])
    assert again.exit_code == 0 and "already revoked" in again.stdout
    assert len(_audit(session, "api_key.revoke")) == 1


def test_cli_refuses_a_mode_the_workspace_has_no_connection_in(
    app: Flask, ready: Workspace, session: Session
) -> None:
    result = app.test_cli_runner().invoke(
        args=["api-keys", "create", ready.id, "--name", "x", "--mode", "live"]
    )
    assert result.exit_code == 1
    assert "no live-mode Polar connection" in result.stderr and result.stdout == ""
    for args in (["--expires-in-days", "0"], ["--mode", "prod"]):
        refused = app.test_cli_runner().invoke(args=["api-keys", "create", ready.id, "--name", "x", *args])
        assert refused.exit_code == 2
    unknown = app.test_cli_runner().invoke(args=["api-keys", "revoke", "cp_test_nosuchkey000"])
    assert unknown.exit_code == 1 and "no API key" in unknown.stderr
    assert _keys(session, ready.id) == [] and _audit(session, "api_key.create") == []
