"""Bad input is a 4xx and changes nothing: NUL bytes and undecodable bytes in any form or query,
error pages for bodies nobody can read, pages never cached, sign-up that reveals no account, and a
sign-in throttle per client address."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator.config import MULTI_ORG_USER_EMAIL
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from app.accounts.views import SIGNUP_REFUSED
from tests.app.conftest import PASSWORD, Accounts, csrf_token, login
from tests.app.polar.conftest import consent, start_connect

FORM = "application/x-www-form-urlencoded"


def _users(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(User)) or 0


def _workspaces(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Workspace)) or 0


SIGNUP = {"email": "new@example.com", "password": "long enough pw", "workspace": "Newco"}


@pytest.mark.parametrize("field", ["email", "password", "workspace", "csrf_token"])
@pytest.mark.parametrize("bad", ["\x00", "a\x00b"])
def test_a_nul_byte_in_any_sign_up_field_is_a_400_that_creates_nothing(
    client: FlaskClient, session: Session, field: str, bad: str
) -> None:
    data = {**SIGNUP, "csrf_token": csrf_token(client, "/signup")}
    data[field] = data[field][:3] + bad
    before = (_users(session), _workspaces(session))

    response = client.post("/signup", data=data)

    assert response.status_code == 400
    assert (_users(session), _workspaces(session)) == before


@pytest.mark.parametrize("field", ["email", "password", "csrf_token"])
def test_a_nul_byte_in_any_sign_in_field_is_a_400(
    client: FlaskClient, accounts: Accounts, field: str
) -> None:
    accounts.user("ana@example.com")
    data = {"email": "ana@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)}
    data[field] += "\x00"
    assert client.post("/login", data=data).status_code == 400
    assert client.get("/").status_code == 302  # not signed in


def test_undecodable_bytes_in_a_form_are_a_400(client: FlaskClient, session: Session) -> None:
    token = csrf_token(client, "/signup")
    body = f"email=new%40example.com&password=long+enough+pw&workspace=New%FFco&csrf_token={token}"
    before = _users(session)
    assert client.post("/signup", data=body.encode(), content_type=FORM).status_code == 400
    assert _users(session) == before


@pytest.mark.parametrize("query", ["next=%00", "next=%FF%FE", "%00=x", "environment=sand%00box"])
def test_nul_or_undecodable_bytes_in_a_query_are_a_400(
    owner_client: FlaskClient, workspace: Workspace, query: str
) -> None:
    assert owner_client.get(f"/login?{query}").status_code == 400
    assert owner_client.get(f"/workspaces/{workspace.id}/polar?{query}").status_code == 400
    assert owner_client.get(f"/workspaces/{workspace.id}/polar/status?{query}").status_code == 400


def test_every_form_refuses_a_nul_byte(app: Flask, owner_client: FlaskClient, workspace: Workspace) -> None:
    """Every route taking a POST (the webhook receiver is not one of Flask's: it reads its own signed
    body)."""
    token = csrf_token(owner_client, f"/workspaces/{workspace.id}/polar")
    checked = []
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()):
            continue
        values = {name: workspace.id if name == "workspace_id" else "1" for name in rule.arguments}
        values = {k: v for k, v in values.items() if k not in (rule.defaults or {})}
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        response = owner_client.post(
            url, data={"csrf_token": token, "environment": "sandbox\x00", "x": "\x00"}
        )
        assert response.status_code == 400, (url, response.status_code)
        checked.append(rule.endpoint)
    assert {
        "accounts.login",
        "accounts.signup",
        "accounts.logout",
        "polar.connect",
        "polar.disconnect",
    } <= set(checked)
    assert owner_client.get("/").status_code == 200  # still signed in: the logout form did nothing


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"email": "x@example.com"}', "application/json"),
        (b'{"not json', "application/json"),
        (b"\x00\xff\xfe", "application/octet-stream"),
    ],
)
def test_an_error_page_never_reads_the_body(
    owner_client: FlaskClient, client: FlaskClient, body: bytes, content_type: str
) -> None:
    for who in (owner_client, client):  # signed in (the page has a sign-out form) and not
        response = who.post("/no/such/page", data=body, content_type=content_type)
        assert response.status_code in (404, 405), response.status_code
        assert "text/html" in response.content_type


def test_a_client_that_disconnects_mid_body_gets_a_4xx(owner_client: FlaskClient) -> None:
    for path in ("/no/such/page", "/login", "/signup"):
        response = owner_client.post(
            path,
            input_stream=io.BytesIO(b"email=a%40b.c&pass"),
            content_type=FORM,
            headers={"Content-Length": "5000"},
        )
        assert 400 <= response.status_code < 500, (path, response.status_code)


def test_the_organization_chooser_is_never_cached(owner_client: FlaskClient, workspace: Workspace) -> None:
    owner_client.get(
        consent(start_connect(owner_client, workspace.id), user=MULTI_ORG_USER_EMAIL).callback_path
    )
    chooser = owner_client.get(f"/workspaces/{workspace.id}/polar/organization")
    assert chooser.status_code == 200 and "organization_id" in chooser.get_data(as_text=True)
    assert chooser.headers["Cache-Control"] == "no-store"
    for path in (f"/workspaces/{workspace.id}/polar", f"/workspaces/{workspace.id}/polar/status", "/"):
        assert owner_client.get(path).headers["Cache-Control"] == "no-store", path


def test_sign_up_does_not_reveal_that_an_account_exists(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    data = {**SIGNUP, "email": "ANA@example.com", "csrf_token": csrf_token(client, "/signup")}

    response = client.post("/signup", data=data)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert SIGNUP_REFUSED.split(".")[0] in page
    assert "exist" not in page.replace("If you already have an account", "")


def test_failed_sign_ins_over_many_emails_from_one_address_are_throttled(
    app: Flask, accounts: Accounts
) -> None:
    from app.accounts.throttle import MAX_FAILURES_PER_ADDRESS

    real = accounts.user("real@example.com")
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.7"

    statuses = []
    for n in range(50):
        data = {
            "email": f"guess{n}@example.com",
            "password": "wrong password",
            "csrf_token": csrf_token(attacker),
        }
        statuses.append(attacker.post("/login", data=data).status_code)

    assert statuses[:MAX_FAILURES_PER_ADDRESS] == [401] * MAX_FAILURES_PER_ADDRESS
    assert set(statuses[MAX_FAILURES_PER_ADDRESS:]) == {429}
    # Even a right password from that address waits; another address is not affected.
    right = {"email": real.email, "password": PASSWORD, "csrf_token": csrf_token(attacker)}
    assert attacker.post("/login", data=right).status_code == 429
    neighbour = app.test_client()
    neighbour.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    login(neighbour, real.email)
