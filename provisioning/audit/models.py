"""``audit_event``: append-only. The model offers no update or delete, and on PostgreSQL a trigger
rejects UPDATE and DELETE on the table (migration 0005)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow
from provisioning.ids import new_id


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_workspace_id_created_at", "workspace_id", "created_at"),
        Index("ix_audit_event_actor_id_created_at", "actor_id", "created_at"),
        Index("ix_audit_event_action_created_at", "action", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Who, as they were at the time (the email is kept even if the user changes or goes).
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_email: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    # No foreign key: the trail outlives what it talks about.
    workspace_id: Mapped[str | None] = mapped_column(String(36))
    target_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # Loading sets attributes through the instance state, not here; only a later write does.
        state = getattr(self, "_sa_instance_state", None)
        if state is not None and name in self.__table__.columns and (state.persistent or state.detached):
            raise AttributeError("audit events are append-only")
        super().__setattr__(name, value)
