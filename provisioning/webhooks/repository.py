"""Queries on ``polar_webhook_event`` (and finding a connection by its webhook URL)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.integrations.models import PolarIntegration
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent


def integration_by_path_token(session: Session, path_token: str) -> PolarIntegration | None:
    return session.scalar(select(PolarIntegration).where(PolarIntegration.webhook_path_token == path_token))


def event_exists(session: Session, integration_id: str, webhook_id: str) -> bool:
    return (
        session.scalar(
            select(PolarWebhookEvent.id).where(
                PolarWebhookEvent.integration_id == integration_id, PolarWebhookEvent.webhook_id == webhook_id
            )
        )
        is not None
    )


def add_event(session: Session, event: PolarWebhookEvent) -> bool:
    """Record a delivery once; False if a concurrent request recorded the same ``webhook-id``."""
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False
    return True


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
