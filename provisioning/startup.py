"""What every process checks before it serves or works: the web (gunicorn's master, then each of its
workers through ``wsgi.py``), the worker (``worker.py``) and every ``flask`` command.

Settings must parse and hold together (:meth:`Settings.check`), the plan catalog must load, the
database must answer, and POLAR_TOKEN_ENCRYPTION_KEY must decrypt the database's key canary (the
first start writes it). Anything else stops the process with one line naming the setting
(:func:`stop`), never a traceback and never a half-started server.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError

from provisioning.canary.service import KeyCheck, verify_keys
from provisioning.catalog import CatalogError, load_catalog
from provisioning.config import ConfigError, Settings
from provisioning.db import Database

log = logging.getLogger(__name__)
# gunicorn's Arbiter.APP_LOAD_ERROR: a worker exiting with it stops the master instead of a restart.
APP_LOAD_ERROR = 4


def check_keys(database: Database, settings: Settings) -> KeyCheck:
    """The key canary check, with an unreachable database reported as a DATABASE_URL problem."""
    try:
        outcome = verify_keys(database, settings)
    except (OperationalError, DBAPIError) as exc:
        # The driver's message may carry the URL's password: name the error class only.
        raise ConfigError(
            f"DATABASE_URL: the database cannot be reached ({type(exc.orig).__name__})"
        ) from None
    log.info("encryption keys: %s", outcome.value)
    return outcome


def check_catalog(settings: Settings) -> None:
    try:
        load_catalog(settings.plans_file)
    except CatalogError as exc:
        raise ConfigError(f"PLANS_FILE: {exc}") from exc


def check_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Every start-up check, on a database connection of its own (closed again: gunicorn's master
    forks after this). Raises ConfigError naming the setting."""
    settings = Settings.from_env(environ)
    check_catalog(settings)
    database = Database(url=settings.database_url)
    try:
        check_keys(database, settings)
    finally:
        if database.engine is not None:
            database.engine.dispose()
    return settings


def stop(exc: ConfigError, code: int = APP_LOAD_ERROR) -> NoReturn:
    """One line on stderr naming the setting, then exit with ``code``."""
    message = " ".join(str(exc).split())
    print(f"Configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
