"""Queries on ``event_forward_endpoint`` and ``event_forward_delivery``: the only place that reads
or writes them with SQL. Functions flush at most; their callers' handlers and jobs commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from provisioning.db import insert_once
from provisioning.forwarding.models import DeliveryStatus, EventForwardDelivery, EventForwardEndpoint


def endpoint_for(session: Session, integration_id: str, *, lock: bool = False) -> EventForwardEndpoint | None:
    query = select(EventForwardEndpoint).where(EventForwardEndpoint.integration_id == integration_id)
    return session.scalar(query.with_for_update() if lock else query)


def endpoint(session: Session, endpoint_id: str, *, lock: bool = False) -> EventForwardEndpoint | None:
    return session.get(EventForwardEndpoint, endpoint_id, with_for_update=lock)


def endpoint_ids(session: Session) -> list[str]:
    return list(session.scalars(select(EventForwardEndpoint.id).order_by(EventForwardEndpoint.id)))


def add_endpoint(session: Session, row: EventForwardEndpoint) -> EventForwardEndpoint:
    session.add(row)
    session.flush()
    return row


def delete_endpoint(session: Session, row: EventForwardEndpoint) -> None:
    session.delete(row)
    session.flush()


def drop_expired_previous_secrets(session: Session, now: datetime) -> int:
    """Forget every previous secret whose overlap ended; returns how many."""
    result = session.execute(
        update(EventForwardEndpoint)
        .where(
            EventForwardEndpoint.previous_secret_expires_at.is_not(None),
            EventForwardEndpoint.previous_secret_expires_at <= now,
        )
        .values(previous_secret=None, previous_secret_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def add_delivery(session: Session, values: dict[str, Any]) -> bool:
    """Queue a delivery once; False if the same event is already queued for the connection (by
    this transaction or a concurrent one: the unique (integration_id, webhook_event_id) decides)."""
    return insert_once(session, EventForwardDelivery, values, ("integration_id", "webhook_event_id"))


def delivery_in(session: Session, integration_id: str, delivery_id: str) -> EventForwardDelivery | None:
    """The delivery, only if it is one of the connection's."""
    return session.scalar(
        select(EventForwardDelivery).where(
            EventForwardDelivery.id == delivery_id, EventForwardDelivery.integration_id == integration_id
        )
    )


def recent(session: Session, integration_id: str, limit: int) -> list[EventForwardDelivery]:
    """The connection's newest deliveries first."""
    return list(
        session.scalars(
            select(EventForwardDelivery)
            .where(EventForwardDelivery.integration_id == integration_id)
            .order_by(EventForwardDelivery.created_at.desc(), EventForwardDelivery.id.desc())
            .limit(limit)
        )
    )


def head(session: Session, integration_id: str) -> EventForwardDelivery | None:
    """The connection's oldest pending delivery: the only one that may be sent next."""
    return session.scalar(
        select(EventForwardDelivery)
        .where(
            EventForwardDelivery.integration_id == integration_id,
            EventForwardDelivery.status == DeliveryStatus.PENDING,
        )
        .order_by(EventForwardDelivery.created_at, EventForwardDelivery.id)
        .limit(1)
    )


def _due(now: datetime) -> Any:
    return or_(EventForwardDelivery.next_attempt_at.is_(None), EventForwardDelivery.next_attempt_at <= now)


def claim(session: Session, delivery_id: str, attempts: int, now: datetime, lease_until: datetime) -> bool:
    """Take the delivery for one attempt: counts it and pushes it out of reach until
    ``lease_until`` (after which a crashed attempt is retried), only if it is still pending, due and
    at ``attempts`` (no other job took it meanwhile)."""
    result = session.execute(
        update(EventForwardDelivery)
        .where(
            EventForwardDelivery.id == delivery_id,
            EventForwardDelivery.status == DeliveryStatus.PENDING,
            EventForwardDelivery.attempts == attempts,
            _due(now),
        )
        .values(attempts=attempts + 1, next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def settle(session: Session, delivery_id: str, attempts: int, values: dict[str, Any]) -> bool:
    """Write an attempt's outcome, unless the delivery changed since it was claimed (a Redeliver
    restarted it: its own attempt's outcome counts)."""
    result = session.execute(
        update(EventForwardDelivery)
        .where(
            EventForwardDelivery.id == delivery_id,
            EventForwardDelivery.status == DeliveryStatus.PENDING,
            EventForwardDelivery.attempts == attempts,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def requeue(session: Session, delivery_id: str, now: datetime) -> None:
    """Pending again, due now, a fresh schedule of attempts (the last outcome stays shown)."""
    session.execute(
        update(EventForwardDelivery)
        .where(EventForwardDelivery.id == delivery_id)
        .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
        .execution_options(synchronize_session=False)
    )


def fail_pending(session: Session, integration_id: str, note: str) -> int:
    """Mark every pending delivery of the connection failed with ``note``; returns how many."""
    result = session.execute(
        update(EventForwardDelivery)
        .where(
            EventForwardDelivery.integration_id == integration_id,
            EventForwardDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=note)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def due_integrations(session: Session, now: datetime, limit: int) -> Sequence[str]:
    """Connections with an enabled endpoint whose oldest pending delivery is due."""
    older = aliased(EventForwardDelivery)
    first = EventForwardDelivery
    return list(
        session.scalars(
            select(first.integration_id)
            .join(
                EventForwardEndpoint,
                and_(
                    EventForwardEndpoint.integration_id == first.integration_id, EventForwardEndpoint.enabled
                ),
            )
            .where(
                first.status == DeliveryStatus.PENDING,
                _due(now),
                ~exists().where(
                    older.integration_id == first.integration_id,
                    older.status == DeliveryStatus.PENDING,
                    or_(
                        older.created_at < first.created_at,
                        and_(older.created_at == first.created_at, older.id < first.id),
                    ),
                ),
            )
            .limit(limit)
        )
    )
