"""The request-scoped SQLAlchemy session: opened on first use, closed on teardown."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.config import Settings
from provisioning.db import Base, Database, get_database


def db_session() -> Session:
    """This request's session. Handlers commit; services only flush."""
    if "db_session" not in g:
        g.db_session = get_database().session()
    return g.db_session


def settings() -> Settings:
    return current_app.extensions["connect_polar.settings"]


def catalog() -> Catalog:
    """The plan catalog of PLANS_FILE, loaded and validated at start-up."""
    return current_app.extensions["connect_polar.catalog"]


def _close_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


class MigrationTarget:
    """What Flask-Migrate's ``env.py`` asks of its ``db``: an engine and the shared metadata."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @property
    def metadata(self) -> MetaData:
        return Base.metadata

    @property
    def engine(self) -> Engine:
        engine = self._database.engine
        if engine is None:  # a test Database bound to one connection
            bind: Any = self._database.sessionmaker.kw["bind"]
            return bind.engine
        return engine

    def get_engine(self) -> Engine:
        return self.engine


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_session)
