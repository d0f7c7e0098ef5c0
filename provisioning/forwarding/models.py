"""``event_forward_endpoint`` (a connection's endpoint in the tenant's app, its signing secrets
encrypted and bound to their row) and ``event_forward_delivery`` (one row per event and
connection: the outbox, and the log the owner reads)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # to send (again at next_attempt_at after a failure)
    DELIVERED = "delivered"  # the tenant's app answered 2xx
    FAILED = "failed"  # every attempt failed (or the endpoint was removed): Redeliver sends it again


class EventForwardEndpoint(Base):
    """At most one per connection. ``secret`` signs every delivery; after a rotation
    ``previous_secret`` signs beside it until ``previous_secret_expires_at``, then is dropped."""

    __tablename__ = "event_forward_endpoint"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), unique=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(Text)  # ciphertext, bound to (this table, column, row)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventForwardDelivery(Base):
    """One event for one connection's endpoint. Its id is the ``webhook-id`` the tenant's app sees,
    the same on every attempt, so the app can deduplicate."""

    __tablename__ = "event_forward_delivery"
    __table_args__ = (
        UniqueConstraint("integration_id", "webhook_event_id"),
        # The sweeper's "what is due" and the job's head of the line.
        Index("ix_event_forward_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_event_forward_delivery_integration_id_created_at", "integration_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE")
    )
    webhook_event_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_webhook_event.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column_type(DeliveryStatus, 16), default=DeliveryStatus.PENDING, server_default="pending"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # None or past: due now. Pushed forward by a claim (an attempt under way) and by each failure.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)  # what went wrong, never a secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
