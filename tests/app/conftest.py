"""Fixtures for the web layer: the app on the test database, a real emulator and a real Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI
from sqlalchemy.orm import Session

from app import create_app
from app.accounts.models import User, Workspace
from provisioning.config import Settings
from provisioning.db import Database
from tests import factories
from tests.factories import TEST_RATE_LIMIT
from tests.live_polar import live_polar, production_server  # noqa: F401  (fixtures)

PASSWORD = factories.PASSWORD
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def settings(emulator, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at the emulator, also exported so in-process jobs read the same ones."""
    environ = {
        "APP_ENV": "test",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
        "POLAR_API_URL": emulator.url,
        "POLAR_WEB_URL": emulator.url,
        "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
        "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "POLAR_OAUTH_REDIRECT_URI": DEMO_REDIRECT_URI,
        "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "POLAR_RATE_LIMIT_PER_MINUTE": str(TEST_RATE_LIMIT),
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return Settings.from_env(environ)


def make_app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database=database)


@pytest.fixture
def app(settings: Settings, database: Database) -> Flask:
    return make_app(settings, database)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Accounts:
    """Real users (who sign in with PASSWORD) and workspaces, committed."""

    session: Session

    def user(self, email: str, *, staff: bool = False) -> User:
        user = factories.make_user(self.session, email, password=PASSWORD, staff=staff)
        self.session.commit()
        return user

    def workspace(self, name: str, owner: User, members: tuple[User, ...] = ()) -> Workspace:
        workspace = factories.make_workspace(self.session, name, owner, members)
        self.session.commit()
        return workspace


@pytest.fixture
def accounts(session: Session) -> Accounts:
    return Accounts(session)


@pytest.fixture
def owner(accounts: Accounts) -> User:
    return accounts.user("owner@example.com")


@pytest.fixture
def workspace(accounts: Accounts, owner: User) -> Workspace:
    return accounts.workspace("Acme", owner)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no csrf_token on {path}"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def owner_client(client: FlaskClient, owner: User) -> Iterator[FlaskClient]:
    login(client, owner.email)
    yield client
