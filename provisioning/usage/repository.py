"""Every query on ``usage_event``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisioning.usage.models import UsageEvent, UsageStatus

TABLE = cast(Table, UsageEvent.__table__)
# What the ingest job reads of a claimed event.
CLAIMED = (
    UsageEvent.id,
    UsageEvent.external_id,
    UsageEvent.name,
    UsageEvent.external_customer_id,
    UsageEvent.timestamp,
    UsageEvent.event_metadata,
    UsageEvent.attempts,
)


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert ``rows`` (dicts keyed by column name), skipping any whose (connection, external id)
    is stored already, even by a concurrent request; the external ids inserted."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(TABLE)
        .on_conflict_do_nothing(index_elements=["integration_id", "external_id"])
        .returning(TABLE.c.external_id)
    )
    return set(session.execute(statement, list(rows)).scalars())


def stored_external_ids(session: Session, integration_id: str, external_ids: Iterable[str]) -> set[str]:
    wanted = list(external_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(UsageEvent.external_id).where(
                UsageEvent.integration_id == integration_id, UsageEvent.external_id.in_(wanted)
            )
        )
    )


def find(session: Session, integration_id: str, external_id: str) -> UsageEvent | None:
    return session.scalar(
        select(UsageEvent).where(
            UsageEvent.integration_id == integration_id, UsageEvent.external_id == external_id
        )
    )


def claim_due(
    session: Session, integration_id: str, now: datetime, until: datetime, limit: int
) -> Sequence[Row[Any]]:
    """The connection's oldest due pending events (at most ``limit``), claimed until ``until``:
    another job skips them (locked rows are skipped on PostgreSQL; a claimed row is not due)."""
    # The ids first, then the update: PostgreSQL may run an ``IN (SELECT … LIMIT … SKIP LOCKED)``
    # subquery more than once within one update, claiming more than ``limit`` rows.
    ids = list(
        session.scalars(
            select(UsageEvent.id)
            .where(
                UsageEvent.integration_id == integration_id,
                UsageEvent.status == UsageStatus.PENDING,
                UsageEvent.next_attempt_at <= now,
            )
            .order_by(UsageEvent.created_at, UsageEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    statement = (
        update(UsageEvent)
        .where(
            UsageEvent.id.in_(ids),
            UsageEvent.status == UsageStatus.PENDING,
            UsageEvent.next_attempt_at <= now,
        )
        .values(next_attempt_at=until)
        .returning(*CLAIMED)
    )
    rows = session.execute(statement, execution_options={"synchronize_session": False}).all()
    return sorted(rows, key=lambda r: (r.timestamp, r.external_id))


def mark_ingested(session: Session, ids: Sequence[str], now: datetime) -> int:
    if not ids:
        return 0
    result = session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(status=UsageStatus.INGESTED, ingested_at=now, next_attempt_at=None, last_error=None),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_failed(session: Session, ids: Sequence[str], error: str, *, count_attempt: bool = True) -> int:
    """Failed for good: never sent again, kept with its error."""
    if not ids:
        return 0
    values: dict[str, Any] = {"status": UsageStatus.FAILED, "next_attempt_at": None, "last_error": error}
    if count_attempt:
        values["attempts"] = UsageEvent.attempts + 1
    result = session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(values),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def retry_later(session: Session, ids: Sequence[str], at: datetime, error: str) -> None:
    """One more failed attempt: due again at ``at``."""
    if not ids:
        return
    session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(attempts=UsageEvent.attempts + 1, next_attempt_at=at, last_error=error),
        execution_options={"synchronize_session": False},
    )


def defer(session: Session, ids: Sequence[str], at: datetime, note: str | None = None) -> None:
    """Due again at ``at``, without counting an attempt (Polar's rate budget is used up, say)."""
    if not ids:
        return
    values: dict[str, Any] = {"next_attempt_at": at}
    if note is not None:
        values["last_error"] = note
    session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(values),
        execution_options={"synchronize_session": False},
    )


def defer_due(session: Session, integration_id: str, now: datetime, at: datetime) -> int:
    """Every due pending event of the connection waits until ``at`` (no attempt counted): the
    connection cannot ingest now, so they need not each be tried."""
    result = session.execute(
        update(UsageEvent)
        .where(
            UsageEvent.integration_id == integration_id,
            UsageEvent.status == UsageStatus.PENDING,
            UsageEvent.next_attempt_at <= now,
        )
        .values(next_attempt_at=at),
        execution_options={"synchronize_session": False},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def integrations_with_due(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Connections with pending events due by ``now``."""
    return list(
        session.scalars(
            select(UsageEvent.integration_id)
            .where(UsageEvent.status == UsageStatus.PENDING, UsageEvent.next_attempt_at <= now)
            .group_by(UsageEvent.integration_id)
            .order_by(func.min(UsageEvent.next_attempt_at))
            .limit(limit)
        )
    )
