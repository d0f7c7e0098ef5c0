"""create_app: configuration checks, cookies and the WSGI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app import create_app
from provisioning.config import ConfigError, Settings
from provisioning.db import Database

ROOT = Path(__file__).resolve().parents[2]


def _production(settings: Settings, **changes: object) -> Settings:
    values: dict[str, object] = {
        "env": "production",
        "secret_key": "Zq8vN2xR7kLp4TgW9mYc3HbD6sFj1UeA5nQo0iVr",
        "database_url": "postgresql+psycopg://db.example/app",
        "token_encryption_keys": [Fernet.generate_key()],
        "public_base_url": "https://billing.example",
        "polar_oauth_redirect_uri": "https://billing.example/polar/callback",
    }
    return settings.model_copy(update={**values, **changes})


def test_production_refuses_a_weak_secret(settings: Settings, database: Database) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(_production(settings, secret_key="short"), database=database)


def test_production_cookies_are_secure(settings: Settings, database: Database) -> None:
    app = create_app(_production(settings), database=database)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize(
    ("field", "name"),
    [("public_base_url", "PUBLIC_BASE_URL"), ("polar_oauth_redirect_uri", "POLAR_OAUTH_REDIRECT_URI")],
)
def test_production_refuses_plain_http_urls(
    settings: Settings, database: Database, field: str, name: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        create_app(_production(settings, **{field: "http://billing.example/x"}), database=database)


def test_production_sends_hsts(settings: Settings, database: Database) -> None:
    app = create_app(_production(settings), database=database)
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_development_sends_no_hsts(settings: Settings, database: Database) -> None:
    response = create_app(settings, database=database).test_client().get("/login")
    assert "Strict-Transport-Security" not in response.headers


def test_development_cookies_work_over_http(settings: Settings, database: Database) -> None:
    app = create_app(settings, database=database)
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_wsgi_stops_with_the_setting_named() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLAR_", "SECRET_KEY"))}
    env.update(APP_ENV="production", DATABASE_URL="postgresql://db.example/app")
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 4  # gunicorn's APP_LOAD_ERROR: a worker failing so stops the master
    assert result.stderr.startswith("Configuration error: SECRET_KEY")
    assert len(result.stderr.splitlines()) == 1


def test_the_account_models_import_without_flask() -> None:
    """Alembic and workers may need the shared metadata; they must not pull in Flask for it."""
    code = "import sys, app.accounts.models; sys.exit('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == 0
