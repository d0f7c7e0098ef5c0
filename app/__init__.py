"""The web layer of Connect Polar: the only package that imports Flask.

``create_app`` is the application factory (Flask's tutorial style): settings, database, extensions,
blueprints and CLI commands are attached here; nothing runs at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from provisioning.config import ConfigError, Settings
from provisioning.db import Database, configure
from provisioning.ratelimit import registry as ratelimit

if TYPE_CHECKING:
    from flask import Flask

    from provisioning.catalog import Catalog

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = ROOT / "migrations"


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the app. A :class:`ConfigError` (bad setting or plan catalog) aborts start-up."""
    # Flask is imported here, not at module level, so ``app.accounts.models`` (plain SQLAlchemy)
    # can be imported without Flask, e.g. by Alembic or a worker that needs the shared metadata.
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    settings = settings or Settings.from_env()
    settings.check()
    catalog = _load_catalog(settings)

    app = Flask(__name__, instance_path=str(ROOT / "instance"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.is_production,
        PREFERRED_URL_SCHEME="https" if settings.is_production else "http",
        TESTING=settings.env == "test",
    )
    app.extensions["connect_polar.settings"] = settings
    ratelimit.install(settings)  # every call to Polar from this process draws on the shared budget
    app.extensions["connect_polar.catalog"] = catalog
    if settings.is_production:
        # Behind one proxy (Heroku's router, a load balancer): trust its scheme and client address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]

    from app import database as web_db
    from app import requests as request_ids
    from app import security
    from app.extensions import csrf, login_manager, migrate

    db = configure(database or Database(url=settings.database_url))
    web_db.init_app(app)
    request_ids.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    # Flask-Migrate only reads ``.metadata`` and ``.engine`` of its ``db``: MigrationTarget has both.
    target = web_db.MigrationTarget(db)
    migrate.init_app(app, target, directory=str(MIGRATIONS_DIR))  # type: ignore[arg-type]

    served = settings.polar_environments.values()
    security.init_app(
        app,
        [e.web_url for e in served],
        {e.callback_path for e in served},
        https_only=settings.is_production,
    )

    from app.accounts import cli as accounts_cli
    from app.accounts import views as accounts_views
    from app.admin import views as admin_views
    from app.api import usage as api_usage  # noqa: F401  (its routes, on the API's blueprint)
    from app.api import views as api_views
    from app.ops import views as ops_views
    from app.polar import api_keys as polar_api_keys
    from app.polar import cli as polar_cli
    from app.polar import forwarding as polar_forwarding
    from app.polar import views as polar_views
    from app.polar import webhooks as polar_webhooks

    accounts_views.init_app(app)
    polar_views.init_app(app, settings)
    polar_api_keys.init_app(app)
    polar_forwarding.init_app(app)
    polar_webhooks.init_app(app)
    api_views.init_app(app, settings)
    admin_views.init_app(app)
    ops_views.init_app(app)
    accounts_cli.init_app(app)
    polar_cli.init_app(app)
    _register_error_pages(app)
    return app


def _load_catalog(settings: Settings) -> Catalog:
    """The plan catalog, validated once at start-up: a bad PLANS_FILE stops the app."""
    from provisioning.catalog import CatalogError, load_catalog

    try:
        return load_catalog(settings.plans_file)
    except CatalogError as exc:
        raise ConfigError(f"PLANS_FILE: {exc}") from exc


def _register_error_pages(app: Flask) -> None:
    from flask import Response, render_template
    from flask_wtf.csrf import CSRFError
    from werkzeug.exceptions import HTTPException

    from app.api import errors as api_errors

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> tuple[str, int]:
        message = "Your form expired or was not sent from this site. Go back, reload the page and try again."
        return render_template("errors/error.html", code=400, title="Bad request", message=message), 400

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> HTTPException | Response | tuple[str, int]:
        if exc.code is None or exc.code < 400:
            return exc
        if api_errors.is_api_request():  # the tenant API answers JSON, unknown routes included
            return api_errors.from_http_exception(exc)
        return (
            render_template("errors/error.html", code=exc.code, title=exc.name, message=exc.description),
            exc.code,
        )
