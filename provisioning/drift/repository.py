"""Queries on ``catalog_drift``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from provisioning.drift.models import CatalogDrift, CatalogObservation


def of_object(session: Session, integration_id: str, polar_id: str) -> dict[str, CatalogDrift]:
    """Every row of one Polar object, open or resolved, by field."""
    rows = session.scalars(
        select(CatalogDrift).where(
            CatalogDrift.integration_id == integration_id, CatalogDrift.polar_id == polar_id
        )
    )
    return {row.field: row for row in rows}


def open_drift(session: Session, integration_id: str, *, limit: int | None = None) -> Sequence[CatalogDrift]:
    """The connection's open drift, the latest first."""
    query = (
        select(CatalogDrift)
        .where(CatalogDrift.integration_id == integration_id, CatalogDrift.resolved_at.is_(None))
        .order_by(CatalogDrift.detected_at.desc(), CatalogDrift.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def count_open(session: Session, integration_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(CatalogDrift)
            .where(CatalogDrift.integration_id == integration_id, CatalogDrift.resolved_at.is_(None))
        )
        or 0
    )


def resolve_detected_before(session: Session, integration_id: str, before: datetime, at: datetime) -> int:
    """Resolve the connection's open drift detected before ``before``; returns how many."""
    result = session.execute(
        update(CatalogDrift)
        .where(
            CatalogDrift.integration_id == integration_id,
            CatalogDrift.resolved_at.is_(None),
            CatalogDrift.detected_at < before,
        )
        .values(resolved_at=at)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def any_open_since(session: Session, integration_id: str, since: datetime) -> bool:
    return (
        session.scalar(
            select(CatalogDrift.id)
            .where(
                CatalogDrift.integration_id == integration_id,
                CatalogDrift.resolved_at.is_(None),
                CatalogDrift.detected_at >= since,
            )
            .limit(1)
        )
        is not None
    )


def add(session: Session, row: CatalogDrift) -> None:
    session.add(row)


def observation(session: Session, integration_id: str, polar_id: str) -> CatalogObservation | None:
    return session.scalar(
        select(CatalogObservation).where(
            CatalogObservation.integration_id == integration_id, CatalogObservation.polar_id == polar_id
        )
    )


def add_observation(session: Session, row: CatalogObservation) -> None:
    session.add(row)
