"""Sign-in, sign-up, sign-out and the home page, with CSRF on."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts.models import Membership, User
from tests.app.conftest import PASSWORD, Accounts, csrf_token, login


def test_login_page_has_the_fields(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    for name in ('name="email"', 'name="password"', 'name="csrf_token"'):
        assert name in page


def test_login_and_home_lists_workspaces(client: FlaskClient, accounts: Accounts) -> None:
    user = accounts.user("ana@example.com")
    accounts.workspace("Ana's shop", user)
    login(client, "ANA@example.com ")
    home = client.get("/")
    assert home.status_code == 200
    assert "Ana&#39;s shop" in home.get_data(as_text=True)


def test_wrong_password_is_refused(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    response = client.post(
        "/login", data={"email": "ana@example.com", "password": "nope-nope", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 401
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_400(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    response = client.post("/login", data={"email": "ana@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # not signed in


def test_login_next_is_never_an_open_redirect(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    token = csrf_token(client)
    response = client.post(
        "/login?next=//evil.example/x",
        data={"email": "ana@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_signup_creates_user_and_owned_workspace(client: FlaskClient, session: Session) -> None:
    response = client.post(
        "/signup",
        data={
            "email": "new@example.com",
            "password": "long enough pw",
            "workspace": "Newco",
            "csrf_token": csrf_token(client, "/signup"),
        },
    )
    assert response.status_code == 303
    assert "/polar" in response.headers["Location"]
    user = session.scalar(select(User).where(User.email == "new@example.com"))
    assert user is not None and user.password_hash.startswith("$argon2id$")
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert membership is not None and membership.role == "owner" and membership.workspace.name == "Newco"
    assert client.get("/").status_code == 200


def test_signup_refuses_a_taken_email(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    response = client.post(
        "/signup",
        data={
            "email": "ana@example.com",
            "password": "long enough pw",
            "workspace": "Again",
            "csrf_token": csrf_token(client, "/signup"),
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "could not create an account with these details" in page  # never "already exists"
    assert "already exists" not in page


def test_signup_without_csrf_token_is_400(client: FlaskClient, session: Session) -> None:
    response = client.post(
        "/signup", data={"email": "new@example.com", "password": "long enough pw", "workspace": "Newco"}
    )
    assert response.status_code == 400
    assert session.scalar(select(User).where(User.email == "new@example.com")) is None


def test_logout_is_a_csrf_protected_post(client: FlaskClient, accounts: Accounts) -> None:
    accounts.user("ana@example.com")
    login(client, "ana@example.com")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303
    assert client.get("/").status_code == 302


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert client.get("/polar/callback?error=access_denied").headers["Referrer-Policy"] == "no-referrer"


def _sign_in(client: FlaskClient, email: str, password: str) -> int:
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    return client.post("/login", data=data).status_code


def test_repeated_wrong_passwords_lock_the_address_for_a_while(
    client: FlaskClient, accounts: Accounts
) -> None:
    from app.accounts.throttle import MAX_FAILURES

    user = accounts.user("target@example.com")
    accounts.user("bystander@example.com")
    assert [_sign_in(client, user.email, "wrong password") for _ in range(MAX_FAILURES)] == [
        401
    ] * MAX_FAILURES

    # Locked: even the right password is refused now, and nothing reveals whether it was right.
    assert _sign_in(client, user.email, PASSWORD) == 429
    assert _sign_in(client, user.email.upper(), PASSWORD) == 429
    # Other addresses are not affected.
    assert _sign_in(client, "bystander@example.com", PASSWORD) == 303


def test_a_successful_sign_in_clears_the_failure_count(client: FlaskClient, accounts: Accounts) -> None:
    from app.accounts.throttle import MAX_FAILURES

    user = accounts.user("someone@example.com")
    for _ in range(MAX_FAILURES - 1):
        assert _sign_in(client, user.email, "wrong password") == 401
    assert _sign_in(client, user.email, PASSWORD) == 303
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(MAX_FAILURES - 1):
        assert _sign_in(client, user.email, "wrong password") == 401
    assert _sign_in(client, user.email, PASSWORD) == 303


def test_a_copied_session_cookie_stops_working_once_its_owner_signs_out(
    app, client: FlaskClient, accounts: Accounts
) -> None:
    accounts.user("ana@example.com")
    login(client, "ana@example.com")
    stolen = client.get_cookie("session")
    assert stolen is not None
    thief = app.test_client()
    thief.set_cookie("session", stolen.value)
    assert thief.get("/").status_code == 200  # the copy works while the session lives

    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert thief.get("/").status_code == 302  # revoked server-side: back to sign-in


def test_signing_out_one_browser_keeps_the_others_signed_in(
    app, client: FlaskClient, accounts: Accounts
) -> None:
    accounts.user("ana@example.com")
    other = app.test_client()
    login(client, "ana@example.com")
    login(other, "ana@example.com")

    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    assert client.get("/").status_code == 302
    assert other.get("/").status_code == 200
