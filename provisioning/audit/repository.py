"""Queries on ``audit_event``: insert and read, never update or delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from provisioning.audit.models import AuditEvent


def add(session: Session, event: AuditEvent) -> AuditEvent:
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # an actor id or an email (exact, case-insensitive)
    action: str | None = None
    workspace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def find(
    session: Session, where: AuditFilter, *, limit: int, offset: int = 0
) -> tuple[list[AuditEvent], int]:
    """The newest first, one page, and how many match in all."""
    conditions: list[ColumnElement[bool]] = []
    if where.actor:
        actor = where.actor.strip()
        conditions.append(
            (AuditEvent.actor_id == actor) | (func.lower(AuditEvent.actor_email) == actor.lower())
        )
    if where.action:
        conditions.append(AuditEvent.action == where.action)
    if where.workspace_id:
        conditions.append(AuditEvent.workspace_id == where.workspace_id)
    if where.since:
        conditions.append(AuditEvent.created_at >= where.since)
    if where.until:
        conditions.append(AuditEvent.created_at < where.until)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
    rows = session.scalars(
        select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
