"""Queries on ``key_canary``."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from provisioning.canary.models import KeyCanary


def table_exists(session: Session) -> bool:
    """False before the migration that creates it has run (``flask db upgrade`` on a first deploy)."""
    return inspect(session.connection()).has_table(KeyCanary.__tablename__)


def get(session: Session, name: str, *, lock: bool = False) -> KeyCanary | None:
    return session.get(KeyCanary, name, with_for_update=lock)


def add(session: Session, canary: KeyCanary) -> KeyCanary:
    session.add(canary)
    session.flush()
    return canary
