"""Argon2 parameters: cheap in the test environment only, production strength everywhere else."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters, profiles
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.accounts import passwords, service
from provisioning.config import Settings
from provisioning.db import Database
from tests.app.conftest import PASSWORD

STRONG = profiles.RFC_9106_LOW_MEMORY  # t=3, m=64 MiB, p=4: argon2-cffi's default
CHEAP = profiles.CHEAPEST


def _params(password_hash: str):
    return extract_parameters(password_hash)


def _strong(password_hash: str) -> bool:
    p = _params(password_hash)
    return (p.time_cost, p.memory_cost, p.parallelism) == (
        STRONG.time_cost,
        STRONG.memory_cost,
        STRONG.parallelism,
    )


def _cheap(password_hash: str) -> bool:
    p = _params(password_hash)
    return (p.time_cost, p.memory_cost, p.parallelism) == (
        CHEAP.time_cost,
        CHEAP.memory_cost,
        CHEAP.parallelism,
    )


@pytest.fixture
def production_app(settings: Settings, database: Database, pg_url: str) -> Flask:
    """The app as production builds it (the checks of ``Settings.check`` pass)."""
    production = settings.model_copy(
        update={
            "env": "production",
            "database_url": pg_url,
            "secret_key": "production-secret-key-" + "y" * 32,
            "public_base_url": "https://billing.example.com",
            "polar_oauth_redirect_uri": "https://billing.example.com/polar/callback",
            "token_encryption_keys": [Fernet.generate_key()],
        }
    )
    return create_app(production, database=database)


def test_only_the_test_environment_gets_the_cheap_parameters() -> None:
    assert passwords.hasher_for("test").time_cost == CHEAP.time_cost
    assert passwords.hasher_for("test").memory_cost == CHEAP.memory_cost
    for env in ("production", "development", "staging", "TEST", ""):
        hasher = passwords.hasher_for(env)
        assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4), env
        # The production hasher is argon2-cffi's default one, unchanged.
        default = PasswordHasher()
        assert (hasher.hash_len, hasher.salt_len) == (default.hash_len, default.salt_len)


def test_the_test_app_hashes_cheaply(app: Flask) -> None:
    with app.app_context():
        password_hash = passwords.hash_password(PASSWORD)
        assert _cheap(password_hash)
        assert passwords.verify_password(password_hash, PASSWORD)
        assert not passwords.verify_password(password_hash, "wrong password")
        assert not passwords.verify_password(None, PASSWORD)
        assert not passwords.needs_rehash(password_hash)


def test_a_production_app_hashes_strongly_even_if_app_env_says_test(
    production_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_ENV", "test")  # the app's own settings decide, not the process environment
    with production_app.app_context():
        password_hash = passwords.hash_password(PASSWORD)
        assert _strong(password_hash)
        assert passwords.verify_password(password_hash, PASSWORD)
        assert not passwords.verify_password(None, PASSWORD)


def test_outside_an_app_the_app_env_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "test")
    assert _cheap(passwords.hash_password(PASSWORD))
    monkeypatch.setenv("APP_ENV", "production")
    assert _strong(passwords.hash_password(PASSWORD))
    monkeypatch.delenv("APP_ENV")
    assert _strong(passwords.hash_password(PASSWORD))


def test_production_upgrades_a_cheap_hash_when_its_owner_signs_in(
    app: Flask, production_app: Flask, session: Session
) -> None:
    with app.app_context():
        user = service.create_user(session, "cheap@example.com", PASSWORD)
    cheap_hash = user.password_hash
    assert _cheap(cheap_hash)

    with production_app.app_context():
        # A cheap hash still verifies where the strong hasher is in use...
        assert passwords.verify_password(cheap_hash, PASSWORD)
        assert passwords.needs_rehash(cheap_hash)
        # ...a wrong password neither signs in nor touches the hash...
        assert service.authenticate(session, "cheap@example.com", "wrong password") is None
        assert user.password_hash == cheap_hash
        # ...and signing in replaces it with a strong one.
        assert service.authenticate(session, "cheap@example.com", PASSWORD) is user
    assert _strong(user.password_hash)
    with production_app.app_context():
        assert not passwords.needs_rehash(user.password_hash)
        assert service.authenticate(session, "cheap@example.com", PASSWORD) is user
