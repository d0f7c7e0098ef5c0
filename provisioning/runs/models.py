"""``provisioning_run`` and ``provisioning_step``: what a run did, step by step."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped by a disconnect (or the connection changed under it)


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunBatch(Base):
    """Runs started together by staff (a bulk re-provision): their progress is read off the runs."""

    __tablename__ = "run_batch"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by_user_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    # What was selected, in words ("3 selected workspaces", "all matching status=failed").
    selection: Mapped[str] = mapped_column(Text, default="")
    total: Mapped[int] = mapped_column(Integer, default=0)


# At most one queued or running run per integration, enforced by the database itself (a unique
# partial index): two triggers at once can never both start a run.
ONE_ACTIVE_RUN_INDEX = "uq_provisioning_run_one_active_per_integration"
ACTIVE_RUN_CONDITION = "status IN ('queued', 'running')"


class ProvisioningRun(Base):
    __tablename__ = "provisioning_run"
    __table_args__ = (
        Index("ix_provisioning_run_integration_id_created_at", "integration_id", "created_at"),
        Index(
            ONE_ACTIVE_RUN_INDEX,
            "integration_id",
            unique=True,
            postgresql_where=text(ACTIVE_RUN_CONDITION),
            sqlite_where=text(ACTIVE_RUN_CONDITION),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[RunStatus] = mapped_column(
        enum_column_type(RunStatus, 16), default=RunStatus.QUEUED, index=True
    )
    trigger: Mapped[str] = mapped_column(String(32), default="connect")  # connect | admin | cli | reconcile
    requested_by_user_id: Mapped[str | None] = mapped_column(String(36))
    # The catalog revision the run provisions: pinned when it is created ("Go live" provisions the
    # sandbox's revision), else the running catalog's, recorded when the run starts.
    catalog_revision: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Outbox: set once the job is on the queue; a sweeper enqueues runs still unset.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Deferred until then (Polar's rate budget was used up): the sweeper enqueues it no earlier.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # While running: until when its worker vouches for it. Renewed by the worker's heartbeat; once
    # it lapses (the worker or its job process was killed), the run is requeued and resumed.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("run_batch.id", ondelete="SET NULL"), index=True
    )
    # Counts of Polar API calls made by the run: {"read": n, "write": m}.
    api_calls: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    steps: Mapped[list[ProvisioningStep]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="ProvisioningStep.position"
    )


class ProvisioningStep(Base):
    __tablename__ = "provisioning_step"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("provisioning_run.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[StepStatus] = mapped_column(enum_column_type(StepStatus, 16), default=StepStatus.PENDING)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # Polar ids the step created, changed or found: [{"kind": "product", "id": ..., "action": "created"}]
    polar_ids: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)

    run: Mapped[ProvisioningRun] = relationship(back_populates="steps")
