"""``polar_webhook_event``: every verified event, once per ``webhook-id`` (stable across retries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow
from provisioning.ids import new_id


class PolarWebhookEvent(Base):
    __tablename__ = "polar_webhook_event"
    __table_args__ = (
        UniqueConstraint("integration_id", "webhook_id"),
        Index("ix_polar_webhook_event_integration_id_received_at", "integration_id", "received_at"),
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
