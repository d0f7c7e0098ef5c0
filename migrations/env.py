"""Alembic environment for the one metadata that app/ and provisioning/ models share.

Works two ways:
- ``flask db upgrade``: Flask-Migrate puts its extension on ``current_app``; the engine comes from it.
- standalone (tests, scripts): a SQLAlchemy connection in ``config.attributes["connection"]``,
  or ``sqlalchemy.url`` / ``DATABASE_URL``.
SQLite gets ``render_as_batch`` so ALTERs work there too.
"""

from __future__ import annotations

import logging
import os
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context

import app.accounts.models  # noqa: F401  (users, workspace, membership)
import provisioning.models  # noqa: F401  (the domain's tables)
from provisioning.db import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")
target_metadata = Base.metadata


def _flask_engine() -> sa.Engine | None:
    try:
        from flask import current_app

        migrate = current_app.extensions["migrate"]
    except (ImportError, RuntimeError, KeyError):
        return None
    db = migrate.db
    return db.get_engine() if hasattr(db, "get_engine") else db.engine


def _configure(connection: sa.Connection) -> None:
    options: dict[str, Any] = {}
    try:
        from flask import current_app

        options = dict(current_app.extensions["migrate"].configure_args)
    except (ImportError, RuntimeError, KeyError):
        pass
    options.setdefault("compare_type", True)
    options["render_as_batch"] = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=target_metadata, **options)


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = _flask_engine()
    if engine is None:
        from provisioning.config import Settings
        from provisioning.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
