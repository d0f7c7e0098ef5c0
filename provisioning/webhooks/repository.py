"""Queries on ``polar_webhook_event`` (and finding a connection by its webhook URL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.integrations.models import PolarIntegration
from provisioning.webhooks.models import PolarWebhookEvent


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


def count_events(session: Session, integration_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(PolarWebhookEvent)
            .where(PolarWebhookEvent.integration_id == integration_id)
        )
        or 0
    )


def latest_event(session: Session, integration_id: str) -> Row[Any] | None:
    """The newest delivery's (event_type, received_at)."""
    return session.execute(
        select(PolarWebhookEvent.event_type, PolarWebhookEvent.received_at)
        .where(PolarWebhookEvent.integration_id == integration_id)
        .order_by(PolarWebhookEvent.received_at.desc())
        .limit(1)
    ).first()
