"""``usage_event``: a tenant's usage events, stored durably before they are ingested to Polar.

The rows are the outbox: a pending row is sent to Polar by the billing queue's ingest job (nudged
after the commit, and by the worker's sweeper when that nudge was lost), then marked ingested.
``external_id`` (the tenant's, or one we generate) is what Polar deduplicates on per organization,
so a batch sent again after a crash is counted once.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class UsageStatus(enum.StrEnum):
    PENDING = "pending"  # to send to Polar (again at next_attempt_at after a failure)
    INGESTED = "ingested"  # Polar has it (inserted, or already there: a duplicate at Polar)
    FAILED = "failed"  # Polar refused it, or every attempt failed: kept, visible, never sent again


class UsageEvent(Base):
    __tablename__ = "usage_event"
    __table_args__ = (
        # One event per external id and connection, as Polar keeps one per organization.
        UniqueConstraint("integration_id", "external_id"),
        # The sweeper: connections with due pending events.
        Index("ix_usage_event_status_next_attempt_at", "status", "next_attempt_at"),
        # The ingest job: a connection's due pending events.
        Index("ix_usage_event_integration_id_status", "integration_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE")
    )
    # The key that sent it (kept when the key is deleted, as null).
    api_key_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("api_key.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(128))
    external_customer_id: Mapped[str] = mapped_column(String(256))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    event_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    status: Mapped[UsageStatus] = mapped_column(
        enum_column_type(UsageStatus, 16), default=UsageStatus.PENDING, server_default="pending"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When a pending event is due (set when stored; pushed back while claimed or after a failure);
    # null once ingested or failed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ingested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
