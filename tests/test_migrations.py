"""Migrations and models agree, on PostgreSQL and SQLite, and downgrade to base works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

import app.accounts.models  # noqa: F401
import provisioning.models  # noqa: F401
from provisioning.db import Base, make_engine
from tests.conftest import PG_BASE_URL
from tests.migrations_util import ROOT

TABLES = {
    "users",
    "workspace",
    "membership",
    "polar_connect_attempt",
    "polar_integration",
    "polar_product_mapping",
    "provisioning_run",
    "provisioning_step",
}


def _config(connection: sa.Connection) -> Config:
    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


@pytest.fixture
def pg_empty(worker_id: str) -> Iterator[sa.Engine]:
    name = f"connect_polar_migrations_{worker_id}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(sa.make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_empty(tmp_path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    yield engine
    engine.dispose()


@pytest.mark.parametrize("engine_fixture", ["pg_empty", "sqlite_empty"])
def test_upgrade_matches_models_and_downgrades(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    engine: sa.Engine = request.getfixturevalue(engine_fixture)
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) >= TABLES
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
        )
        diff = compare_metadata(context, Base.metadata)
        assert diff == [], diff
    with engine.begin() as conn:
        command.downgrade(_config(conn), "base")
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
