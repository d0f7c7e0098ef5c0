"""The one SQLAlchemy metadata, engine and session factory that the web app and workers share.

Services flush; only web handlers and job entry points commit.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, DateTime, Engine, Index, MetaData, Table, create_engine, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column_type(enum_class: type[enum.StrEnum], length: int) -> SAEnum:
    """A status enum stored as its value in a VARCHAR (no native type: adding a member needs no
    migration on PostgreSQL, and SQLite has none), loaded back as the enum member."""
    return SAEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def trigram_index(name: str, column: str) -> Index:
    """A trigram index for ``ILIKE '%…%'`` search on PostgreSQL (a plain index elsewhere)."""
    return Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def utcnow() -> datetime:
    return datetime.now(UTC)


# insert_once's statements, by table, unique columns and dialect: built once, then only executed.
_INSERT_ONCE: dict[tuple[str, tuple[str, ...], str], Any] = {}


def insert_once(session: Session, model: type[Base], values: dict[str, Any], unique: tuple[str, ...]) -> bool:
    """Insert a row of ``model``'s table unless one with the same ``unique`` columns exists, in one statement
    (``INSERT … ON CONFLICT DO NOTHING RETURNING``, on PostgreSQL and SQLite alike) on the session's
    connection; False when the row existed (inserted before, or by a concurrent transaction)."""
    table = cast(Table, model.__table__)
    connection = session.connection()
    key = (table.name, unique, connection.dialect.name)
    statement = _INSERT_ONCE.get(key)
    if statement is None:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = _INSERT_ONCE[key] = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(*table.primary_key)
        )
    return connection.execute(statement, values).first() is not None


class DriverConnection(NamedTuple):
    """A DB-API connection and its SQLAlchemy dialect (:meth:`Database.autocommit`)."""

    dbapi: Any
    dialect: Dialect


@dataclass(frozen=True)
class _DriverStatement:
    sql: str
    positions: tuple[str, ...] | None  # the order of the parameters where the driver's are positional
    processors: dict[str, Callable[[Any], Any]]  # the types' conversions, by parameter name
    compiled: SQLCompiler


_DRIVER_STATEMENTS: dict[tuple[ClauseElement, str], _DriverStatement] = {}


def driver_first(
    connection: DriverConnection, statement: ClauseElement, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """Run a Core statement on the DB-API connection and return its first row as the driver gives
    it (no result types applied). The statement is compiled once per dialect, with its parameters'
    type conversions, so each run costs the driver's work only: for a statement run on every
    request of a hot path, built once. Column defaults computed in Python are not run: a statement
    that would need one is refused."""
    key = (statement, connection.dialect.name)
    prepared = _DRIVER_STATEMENTS.get(key)
    if prepared is None:
        compiled = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
        if compiled.insert_prefetch or compiled.update_prefetch:
            # Defaults computed in Python (ids, times) need SQLAlchemy's execution: give the values.
            raise ValueError("driver_first runs no Python-side column default: give every value")
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind in compiled.binds.values():
            processor = bind.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
            if processor is not None:
                processors[compiled.bind_names[bind]] = processor
        positions = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        prepared = _DRIVER_STATEMENTS[key] = _DriverStatement(
            compiled.string, positions, processors, compiled
        )
    values = prepared.compiled.construct_params(params)
    for name, convert in prepared.processors.items():
        values[name] = convert(values[name])
    cursor = connection.dbapi.cursor()
    try:
        if prepared.positions is not None:
            cursor.execute(prepared.sql, [values[name] for name in prepared.positions])
        else:
            cursor.execute(prepared.sql, values)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return tuple(row) if row is not None else None


def iso_utc(value: datetime | None) -> str | None:
    """A time as the tenant API writes it: ISO 8601 in UTC, with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if kwargs.get("pool_pre_ping") is not None:
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection idle this long is checked before it is used again (a database restart, a
# server or proxy closing idle connections); one used more recently is trusted. Pinging on every
# checkout (SQLAlchemy's pool_pre_ping) cost a round trip per request: about 15% of a webhook
# delivery's CPU. A restart within this window fails one request per process; SQLAlchemy then
# invalidates the pool, and the next request connects again.
PING_IF_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_IF_IDLE_SECONDS:
            return  # just connected, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool throws this connection away and takes another
            raise DisconnectionError(
                f"a pooled connection idle {PING_IF_IDLE_SECONDS:.0f} s is gone"
            ) from exc


class Database:
    """An engine and its session factory. Tests bind one to a connection inside a transaction."""

    def __init__(self, engine: Engine | None = None, *, bind: Any = None, url: str | None = None) -> None:
        if engine is None and bind is None:
            assert url is not None, "Database needs an engine, a bind or a url"
            engine = make_engine(url)
        self.engine = engine
        options: dict[str, Any] = {"join_transaction_mode": "create_savepoint"} if bind is not None else {}
        self.sessionmaker = sessionmaker(
            bind=bind if bind is not None else engine, expire_on_commit=False, **options
        )

    def session(self) -> Session:
        return self.sessionmaker()

    @contextmanager
    def autocommit(self) -> Iterator[DriverConnection]:
        """A DB-API connection on which each statement commits as it runs, for :func:`driver_first`:
        work done in single statements (the webhook receiver's), which then costs one round trip
        each, without ``BEGIN`` and ``COMMIT``, and without SQLAlchemy's execution layer (which cost
        about as much CPU as the driver's own work). The connection comes from the engine's pool
        and goes back to it as it came. A test Database bound to a connection runs the statements
        in a savepoint of its transaction."""
        if self.engine is None:
            bind: Connection = self.sessionmaker.kw["bind"]
            with bind.begin_nested():
                yield DriverConnection(bind.connection.dbapi_connection, bind.dialect)
            return
        dialect = self.engine.dialect
        pooled = self.engine.raw_connection()
        dbapi = pooled.dbapi_connection
        assert dbapi is not None  # a connection just checked out of the pool
        try:
            dialect.set_isolation_level(dbapi, "AUTOCOMMIT")
            yield DriverConnection(dbapi, dialect)
        finally:
            try:
                dialect.reset_isolation_level(dbapi)
            except Exception:  # a broken connection: the pool connects anew next time
                pooled.invalidate()
            pooled.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits at the end of the block, or rolls back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


_database: Database | None = None


def configure(database: Database) -> Database:
    """Set the process-wide database (workers and the web app each call this once)."""
    global _database
    _database = database
    return database


def get_database() -> Database:
    if _database is None:
        from provisioning.config import Settings

        configure(Database(url=Settings.from_env().database_url))
    assert _database is not None
    return _database
