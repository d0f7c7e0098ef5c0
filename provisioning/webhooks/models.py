"""``polar_webhook_event``: every verified event, once per ``webhook-id`` (stable across retries),
with its raw body and the headers it was signed with, and where its processing stands."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class EventStatus(enum.StrEnum):
    PENDING = "pending"  # to process (again at next_attempt_at after a failure)
    PROCESSED = "processed"  # applied to the billing state (or found stale: nothing to change)
    IGNORED = "ignored"  # a type the platform does not use, or about an object it does not manage
    FLAGGED = "flagged"  # about another organization than the connection's: refused from the state
    FAILED = "failed"  # processing failed every attempt; `flask webhooks replay` tries again


class PolarWebhookEvent(Base):
    __tablename__ = "polar_webhook_event"
    __table_args__ = (
        UniqueConstraint("integration_id", "webhook_id"),
        Index("ix_polar_webhook_event_integration_id_received_at", "integration_id", "received_at"),
        Index("ix_polar_webhook_event_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What was signed: the body's bytes and the webhook-id/-timestamp headers (never the signature).
    raw_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    signed_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    status: Mapped[EventStatus] = mapped_column(
        enum_column_type(EventStatus, 16), default=EventStatus.PENDING, server_default="pending"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)  # why ignored, flagged or failing
