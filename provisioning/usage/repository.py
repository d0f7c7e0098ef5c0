"""Every query on ``usage_event``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, func, select, text, update
from sqlalchemy.dialects import sqlite
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


@dataclass(frozen=True)
class NewRow:
    """A usage event to store: what differs from one event of a request to the next."""

    id: str
    external_id: str
    name: str
    external_customer_id: str
    timestamp: datetime
    metadata: dict[str, Any] | None


# One statement for a whole request on PostgreSQL: the rows travel as a few arrays, so neither
# the statement nor its parsing grows with the number of events (a multi-row VALUES of 1,000
# events has 12,000 parameters to render and parse).
_INSERT_UNNEST = text(
    """
    INSERT INTO usage_event (id, integration_id, api_key_id, external_id, name, external_customer_id,
                             timestamp, metadata, status, attempts, next_attempt_at, created_at)
    SELECT e.id, CAST(:integration_id AS VARCHAR), CAST(:api_key_id AS VARCHAR), e.external_id, e.name,
           e.external_customer_id, e.timestamp, e.metadata, :status, 0, CAST(:now AS TIMESTAMPTZ),
           CAST(:now AS TIMESTAMPTZ)
    FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:external_ids AS VARCHAR[]), CAST(:names AS VARCHAR[]),
                CAST(:customers AS VARCHAR[]), CAST(:timestamps AS TIMESTAMPTZ[]), CAST(:metadata AS JSON[]))
         AS e(id, external_id, name, external_customer_id, timestamp, metadata)
    ON CONFLICT (integration_id, external_id) DO NOTHING
    RETURNING external_id
    """
)


def insert_new(
    session: Session, integration_id: str, api_key_id: str | None, now: datetime, rows: Sequence[NewRow]
) -> set[str]:
    """Store ``rows`` as pending events of the connection, due ``now``, skipping any whose external
    id the connection holds already (even one a concurrent request stored); the external ids
    inserted."""
    if not rows:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        params = {
            "integration_id": integration_id,
            "api_key_id": api_key_id,
            "status": UsageStatus.PENDING.value,
            "now": now,
            "ids": [r.id for r in rows],
            "external_ids": [r.external_id for r in rows],
            "names": [r.name for r in rows],
            "customers": [r.external_customer_id for r in rows],
            "timestamps": [r.timestamp for r in rows],
            "metadata": [json.dumps(r.metadata) if r.metadata is not None else None for r in rows],
        }
        return set(session.execute(_INSERT_UNNEST, params).scalars())
    statement = (
        sqlite.insert(TABLE)
        .on_conflict_do_nothing(index_elements=["integration_id", "external_id"])
        .returning(TABLE.c.external_id)
    )
    values = [
        {
            "id": r.id,
            "integration_id": integration_id,
            "api_key_id": api_key_id,
            "external_id": r.external_id,
            "name": r.name,
            "external_customer_id": r.external_customer_id,
            "timestamp": r.timestamp,
            "metadata": r.metadata,
            "status": UsageStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in rows
    ]
    return set(session.execute(statement, values).scalars())


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


def mark_failed(session: Session, ids: Sequence[str], error: str) -> int:
    """One more failed attempt, and the last: never sent again, kept with its error."""
    if not ids:
        return 0
    result = session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(
            status=UsageStatus.FAILED,
            attempts=UsageEvent.attempts + 1,
            next_attempt_at=None,
            last_error=error,
        ),
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


def defer(session: Session, ids: Sequence[str], at: datetime) -> None:
    """Due again at ``at``, without counting an attempt (Polar's rate budget is used up, say)."""
    if not ids:
        return
    session.execute(
        update(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.status == UsageStatus.PENDING)
        .values(next_attempt_at=at),
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
