"""``Database.autocommit`` and ``driver_first``: single statements on the DB-API connection (the
webhook receiver's), with SQLAlchemy's type conversions, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import JSON, bindparam, select

from provisioning.db import Database, UTCDateTime, driver_first, enum_column_type, make_engine
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent

WHEN = datetime(2027, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
# Each parameter through its type's conversion, read back as the database stored it.
ECHO = select(
    bindparam("status", type_=enum_column_type(EventStatus, 16)),
    bindparam("doc", type_=JSON),
    sa.cast(bindparam("when", type_=UTCDateTime()), sa.String),
)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_parameters_take_their_types_conversions(dialect, database, sqlite_database) -> None:
    db: Database = database if dialect == "postgresql" else sqlite_database
    with db.autocommit() as connection:
        row = driver_first(connection, ECHO, {"status": EventStatus.FAILED, "doc": {"a": [1]}, "when": WHEN})

    assert row is not None
    status, doc, when = row
    assert status == "failed"
    assert (doc if isinstance(doc, dict) else json.loads(doc)) == {"a": [1]}  # SQLite: as text
    assert when.startswith("2027-01-02") and "03:04:05.678901" in when


def test_a_statement_needing_a_python_default_is_refused(database) -> None:
    # The id's default (new_id) runs in SQLAlchemy's execution, which driver_first skips.
    statement = sa.insert(PolarWebhookEvent).values(
        integration_id=bindparam("i"), webhook_id="w", event_type="t", payload={}, received_at=WHEN
    )
    with database.autocommit() as connection, pytest.raises(ValueError, match="default"):
        driver_first(connection, statement, {"i": "x"})


def test_each_statement_commits_and_the_connection_goes_back_as_it_came(pg_engine) -> None:
    # A pool of one connection: the next checkout is the same one (temporary tables are per connection).
    engine = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    database = Database(engine)
    with database.autocommit() as connection:
        connection.dbapi.execute("CREATE TEMPORARY TABLE t (n int)")
        assert connection.dbapi.autocommit is True
        assert driver_first(connection, sa.text("INSERT INTO t VALUES (:n) RETURNING n"), {"n": 1}) == (1,)
        dbapi = connection.dbapi
    # Committed by itself: the connection sees the row in a new transaction, and runs in
    # transactions again.
    pooled = engine.raw_connection()
    try:
        assert pooled.dbapi_connection is dbapi
        assert dbapi.autocommit is False
        cursor = pooled.cursor()
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone()[0] == 1
    finally:
        pooled.close()
        engine.dispose()
