"""Queries on ``polar_webhook_event`` (and finding a connection by its webhook URL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    Insert,
    Table,
    Text,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisioning.db import DriverConnection, driver_first
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent


class Endpoint(NamedTuple):
    """What the receiver needs of the connection a webhook URL belongs to (no ORM object: one
    short row per delivery)."""

    integration_id: str
    status: IntegrationStatus
    webhook_secret: str | None


# The receiver's statements, built once and run on the DB-API connection (``driver_first``): a
# delivery comes per event Polar raises, and these are all it costs the database.
_ENDPOINT = select(PolarIntegration.id, PolarIntegration.status, PolarIntegration.webhook_secret).where(
    PolarIntegration.webhook_path_token == bindparam("path_token")
)
_EVENT_UNIQUE = ("integration_id", "webhook_id")


def endpoint_by_path_token(connection: DriverConnection, path_token: str) -> Endpoint | None:
    row = driver_first(connection, _ENDPOINT, {"path_token": path_token})
    return Endpoint(row[0], IntegrationStatus(row[1]), row[2]) if row is not None else None


def insert_event_if_unchanged(
    connection: DriverConnection, endpoint: Endpoint, path_token: str, values: dict[str, Any]
) -> bool:
    """Record a delivery verified with ``endpoint`` (as read, now or earlier), in one statement that
    also checks the connection still has it (same URL token and secret ciphertext, not
    disconnected): ``INSERT … SELECT … FROM polar_integration WHERE … ON CONFLICT DO NOTHING`` on
    the connection's unique ``webhook-id``, on PostgreSQL and SQLite alike. ``values["payload"]`` is
    the body's JSON text, stored as it is (no second serialization). False when nothing was
    inserted: the ``webhook-id`` is recorded already (a retry of Polar's, or the same delivery in a
    concurrent request), or the endpoint changed."""
    statement = _INSERT_IF_UNCHANGED.get(connection.dialect.name)
    if statement is None:
        statement = _INSERT_IF_UNCHANGED[connection.dialect.name] = _build_insert_if_unchanged(
            connection.dialect.name
        )
    params = {
        **values,
        "integration_id": endpoint.integration_id,
        "path_token": path_token,
        "webhook_secret": endpoint.webhook_secret,
    }
    return driver_first(connection, statement, params) is not None


_INSERT_IF_UNCHANGED: dict[str, Insert] = {}
_INSERTED_COLUMNS = (
    "id",
    "webhook_id",
    "event_type",
    "raw_body",
    "signed_headers",
    "status",
    "attempts",
    "received_at",
)


def _build_insert_if_unchanged(dialect: str) -> Insert:
    events = cast(Table, PolarWebhookEvent.__table__)
    integrations = cast(Table, PolarIntegration.__table__)
    text = bindparam("payload", type_=Text())
    # PostgreSQL takes the text as JSON with a cast; SQLite stores JSON as text.
    payload = sa.cast(text, JSON) if dialect == "postgresql" else text
    source = select(
        *(bindparam(name, type_=events.c[name].type) for name in _INSERTED_COLUMNS),
        payload,
        integrations.c.id,
    ).where(
        integrations.c.id == bindparam("integration_id"),
        integrations.c.webhook_path_token == bindparam("path_token"),
        integrations.c.webhook_secret == bindparam("webhook_secret"),
        integrations.c.status != IntegrationStatus.NOT_CONNECTED,
    )
    return (
        (postgresql if dialect == "postgresql" else sqlite)
        .insert(events)
        .from_select([*_INSERTED_COLUMNS, "payload", "integration_id"], source)
        .on_conflict_do_nothing(index_elements=list(_EVENT_UNIQUE))
        .returning(events.c.id)
    )


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
