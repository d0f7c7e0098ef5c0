"""Queries on ``polar_webhook_event`` (and finding a connection by its webhook URL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from provisioning.db import insert_once
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent


class Endpoint(NamedTuple):
    """What the receiver needs of the connection a webhook URL belongs to (no ORM object: one
    short row per delivery)."""

    integration_id: str
    status: IntegrationStatus
    webhook_secret: str | None


# The receiver's lookup, built once and run on the session's connection (Core, not the ORM): with
# the insert, all a delivery costs the database, and a delivery comes per event Polar raises.
_ENDPOINT = select(PolarIntegration.id, PolarIntegration.status, PolarIntegration.webhook_secret).where(
    PolarIntegration.webhook_path_token == bindparam("path_token")
)


def endpoint_by_path_token(session: Session, path_token: str) -> Endpoint | None:
    row = session.connection().execute(_ENDPOINT, {"path_token": path_token}).first()
    return Endpoint(row[0], row[1], row[2]) if row is not None else None


def insert_event(session: Session, values: dict[str, Any]) -> bool:
    """Record a delivery in one statement; False when its ``webhook-id`` is recorded already (a
    retry of Polar's, or the same delivery in a concurrent request): ``ON CONFLICT DO NOTHING`` on
    the connection's unique ``webhook-id``, on PostgreSQL and SQLite alike."""
    return insert_once(session, PolarWebhookEvent, values, ("integration_id", "webhook_id"))


class EventSummary(NamedTuple):
    event_type: str
    received_at: datetime


def latest_event(session: Session, integration_id: str) -> EventSummary | None:
    """The newest delivery's type and time."""
    row = session.execute(
        select(PolarWebhookEvent.event_type, PolarWebhookEvent.received_at)
        .where(PolarWebhookEvent.integration_id == integration_id)
        .order_by(PolarWebhookEvent.received_at.desc())
        .limit(1)
    ).first()
    return EventSummary(row[0], row[1]) if row is not None else None


def failing_count(session: Session, integration_id: str) -> int:
    """Events whose processing failed: retrying, or given up until a replay."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(PolarWebhookEvent)
            .where(
                PolarWebhookEvent.integration_id == integration_id,
                or_(
                    PolarWebhookEvent.status == EventStatus.FAILED,
                    (PolarWebhookEvent.status == EventStatus.PENDING) & (PolarWebhookEvent.attempts > 0),
                ),
            )
        )
        or 0
    )


def status_counts(session: Session, integration_id: str) -> dict[str, int]:
    rows = session.execute(
        select(PolarWebhookEvent.status, func.count())
        .where(PolarWebhookEvent.integration_id == integration_id)
        .group_by(PolarWebhookEvent.status)
    ).all()
    return {str(status): int(count) for status, count in rows}
