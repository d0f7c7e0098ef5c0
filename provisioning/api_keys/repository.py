"""Queries on ``api_key``: the only place that reads or writes it with SQL. Functions flush at most;
their callers' handlers commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from provisioning.api_keys.models import ApiKey
from provisioning.integrations.models import PolarIntegration


def add(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def by_create_nonce(session: Session, workspace_id: str, nonce: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.create_nonce == nonce)
    )


def by_lookup_id(session: Session, lookup_id: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.lookup_id == lookup_id))


# The key and its workspace's connection in the key's environment (one at most: unique per
# workspace and environment), read together: every tenant API call needs both.
_WITH_CONNECTION = (
    select(ApiKey, PolarIntegration)
    .outerjoin(
        PolarIntegration,
        and_(
            PolarIntegration.workspace_id == ApiKey.workspace_id,
            PolarIntegration.environment == ApiKey.environment,
        ),
    )
    .where(ApiKey.lookup_id == bindparam("lookup_id"))
)


def by_lookup_id_with_connection(
    session: Session, lookup_id: str
) -> tuple[ApiKey, PolarIntegration | None] | None:
    row = session.execute(_WITH_CONNECTION, {"lookup_id": lookup_id}).first()
    return (row[0], row[1]) if row is not None else None


def lookup_id_taken(session: Session, lookup_id: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.lookup_id == lookup_id)) is not None


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def in_workspace(session: Session, workspace_id: str, key_id: str) -> ApiKey | None:
    """The key, only if it is one of the workspace's."""
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id))


def for_workspace(session: Session, workspace_id: str) -> list[ApiKey]:
    """The workspace's keys, newest first (revoked and expired ones included)."""
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.workspace_id == workspace_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    )


def record_use(session: Session, key_id: str, now: datetime, not_since: datetime) -> bool:
    """Set ``last_used_at`` to ``now`` unless it is already ``not_since`` or later (another call
    recorded it meanwhile): at most one write per key per interval, whatever the concurrency."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < not_since))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def revoke(session: Session, key_id: str, now: datetime, user_id: str | None) -> bool:
    """Revoke the key unless it already is (the first revocation's time and author stay)."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by_user_id=user_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
