"""Fixtures shared by the whole suite: real PostgreSQL and Redis (the local Polar's come from its plugin)."""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  (it installs an "always" filter for its own warnings)

# Authlib 1.9 would rather use the httpx2 package; polar-sdk and the platform use httpx.
warnings.filterwarnings("ignore", message="The httpx module is deprecated", category=DeprecationWarning)

# The local Polar's fixtures (emulator_server, emulator, control) come from its pytest plugin,
# polar_emulator.pytest_plugin.
# -- the database: real PostgreSQL, one database per test process, a savepoint per test ---------
import os
from collections.abc import Iterator

import pytest
import redis as redis_lib
import sqlalchemy as sa

from provisioning import db as db_module
from provisioning.ratelimit import registry as ratelimit_registry

PG_BASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


# -- Redis: a server of each test process's own, emptied around each test ------------------------

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Each test process (each xdist worker) starts its own redis-server on a Unix socket in a fresh
# temporary directory: two test runs on one machine never share a keyspace, and no port is raced for.
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis-server")
REDIS_START_TIMEOUT = 10.0


def _stop_with_this_process() -> None:
    """Run in the child before exec: have Linux send it SIGTERM if the test process dies (even SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a redis-server this test process started (no persistence), stopped at the end."""
    binary = shutil.which(REDIS_SERVER)
    if binary is None:
        pytest.fail(f"{REDIS_SERVER!r} not found: install Redis, or set TEST_REDIS_SERVER to its path")
    workdir = Path(tempfile.mkdtemp(prefix="connect-polar-redis-"))
    socket_path, log_path = workdir / "redis.sock", workdir / "redis.log"
    args = [binary, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log_path)]
    # The death signal follows the forking thread, so only ask for it from the main thread.
    main_thread = threading.current_thread() is threading.main_thread()
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_stop_with_this_process if main_thread and sys.platform == "linux" else None,
    )
    url = f"unix://{socket_path}"
    client = redis_lib.Redis.from_url(url, socket_timeout=5)
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while True:  # wait until it answers: usually a few milliseconds
            if process.poll() is not None:
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                pytest.fail(f"redis-server exited with {process.returncode}: {log[-2000:]}")
            try:
                client.ping()
                break
            except (redis_lib.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer on {socket_path} within {REDIS_START_TIMEOUT}s")
                time.sleep(0.005)
        yield url
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """This test process's own Redis (see ``redis_server``), emptied before and after the test."""
    client = redis_lib.Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.flushall()
    client.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _no_rate_budget_between_tests() -> Iterator[None]:
    """The process's Polar rate budgets (installed by create_app and runs) end with each test, so a
    test that never installs one is not paced by another test's."""
    yield
    ratelimit_registry.uninstall()
