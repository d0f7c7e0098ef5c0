"""Fixtures shared by the whole suite: a real local Polar over HTTP."""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  (it installs an "always" filter for its own warnings)

# Authlib 1.9 would rather use the httpx2 package; polar-sdk and the platform use httpx.
warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)

from collections.abc import Iterator

import httpx
import pytest

from polar_emulator import EmulatorConfig, EmulatorServer


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator per test process; webhook retries run 1000x faster than Polar's."""
    server = EmulatorServer(EmulatorConfig(webhook_retry_scale=0.001, webhook_timeout=2.0)).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The emulator, reset to its seed before the test."""
    httpx.post(f"{emulator_server.url}/_emulator/reset").raise_for_status()
    yield emulator_server


@pytest.fixture
def control(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the emulator's control API and root."""
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


# -- the database: real PostgreSQL, one database per test process, a savepoint per test ---------

import os

import redis as redis_lib
import sqlalchemy as sa

from provisioning import db as db_module

PG_BASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def create_schema(engine: sa.Engine) -> None:
    """Build the schema the way production does: by running the migrations."""
    from tests.migrations_util import upgrade_to_head

    upgrade_to_head(engine)


@pytest.fixture(scope="session")
def pg_url(worker_id: str, testrun_uid: str) -> Iterator[str]:
    # Unique per test run, so two runs on one server never drop each other's databases.
    name = f"connect_polar_test_{testrun_uid[:8]}_{worker_id}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = db_module.make_engine(pg_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def database(pg_engine: sa.Engine) -> Iterator[db_module.Database]:
    """A Database whose sessions all run inside one transaction, rolled back after the test.

    ``session.commit()`` in code under test releases a savepoint, so commits behave as in
    production while nothing leaks between tests (PyPI's Warehouse does the same).
    """
    connection = pg_engine.connect()
    transaction = connection.begin()
    database = db_module.Database(bind=connection)
    previous = db_module._database
    db_module.configure(database)
    yield database
    db_module._database = previous
    transaction.rollback()
    connection.close()


@pytest.fixture
def session(database: db_module.Database) -> Iterator[sa.orm.Session]:
    s = database.session()
    yield s
    s.close()


@pytest.fixture
def committing_database(pg_engine: sa.Engine) -> Iterator[db_module.Database]:
    """A Database with real commits on separate connections, for concurrency tests; emptied after."""
    database = db_module.Database(pg_engine)
    previous = db_module._database
    db_module.configure(database)
    yield database
    db_module._database = previous
    with pg_engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in db_module.Base.metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
def sqlite_database(tmp_path) -> Iterator[db_module.Database]:
    """The zero-setup local default: a SQLite file, migrated."""
    engine = db_module.make_engine(f"sqlite:///{tmp_path / 'connect_polar.db'}")
    create_schema(engine)
    database = db_module.Database(engine)
    previous = db_module._database
    db_module.configure(database)
    yield database
    db_module._database = previous
    engine.dispose()


@pytest.fixture
def redis_url(worker_id: str) -> Iterator[str]:
    """A Redis database of this test process's own, emptied before and after the test."""
    index = 1 if worker_id == "master" else 1 + int(worker_id.removeprefix("gw")) % 15
    url = f"{REDIS_BASE_URL}/{index}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()
