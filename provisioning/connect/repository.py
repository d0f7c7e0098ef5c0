"""Queries on ``polar_connect_attempt``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisioning.connect.models import PolarConnectAttempt, PolarConnectionSwitch, SwitchCleanup
from provisioning.db import utcnow


def add(session: Session, attempt: PolarConnectAttempt) -> PolarConnectAttempt:
    session.add(attempt)
    session.flush()
    return attempt


def get_for_update(session: Session, nonce: str) -> PolarConnectAttempt | None:
    return session.get(PolarConnectAttempt, nonce, with_for_update=True)


def newer_completed(session: Session, attempt: PolarConnectAttempt) -> PolarConnectAttempt | None:
    """An attempt of the same workspace and environment, started after ``attempt``, that stored its
    connection (the newest such), if any."""
    return session.scalar(
        select(PolarConnectAttempt)
        .where(
            PolarConnectAttempt.workspace_id == attempt.workspace_id,
            PolarConnectAttempt.environment == attempt.environment,
            PolarConnectAttempt.created_at > attempt.created_at,
            PolarConnectAttempt.completed_at.is_not(None),
        )
        .order_by(PolarConnectAttempt.created_at.desc())
        .limit(1)
    )


def nonces(session: Session) -> list[str]:
    """Every attempt's primary key, used ones included (key rotation rewrites them all)."""
    return list(session.scalars(select(PolarConnectAttempt.nonce).order_by(PolarConnectAttempt.nonce)))


def purge_expired(session: Session, *, older_than: timedelta) -> int:
    result = session.execute(
        delete(PolarConnectAttempt).where(PolarConnectAttempt.expires_at < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def any_verifier(session: Session) -> tuple[str, str] | None:
    """(nonce, verifier ciphertext) of one attempt, if any."""
    row = session.execute(
        select(PolarConnectAttempt.nonce, PolarConnectAttempt.code_verifier).limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def add_switch(session: Session, switch: PolarConnectionSwitch) -> PolarConnectionSwitch:
    session.add(switch)
    session.flush()
    return switch


def latest_switch(session: Session, integration_id: str) -> PolarConnectionSwitch | None:
    return session.scalar(
        select(PolarConnectionSwitch)
        .where(PolarConnectionSwitch.integration_id == integration_id)
        .order_by(PolarConnectionSwitch.switched_at.desc())
        .limit(1)
    )


def switch_by_path_token(session: Session, path_token: str) -> PolarConnectionSwitch | None:
    return session.scalar(
        select(PolarConnectionSwitch).where(PolarConnectionSwitch.webhook_path_token == path_token)
    )


def pending_cleanups(session: Session, *, limit: int = 50) -> list[PolarConnectionSwitch]:
    """Switches whose old webhook endpoint is still to be deleted, locked (others skip them)."""
    return list(
        session.scalars(
            select(PolarConnectionSwitch)
            .where(PolarConnectionSwitch.cleanup == SwitchCleanup.PENDING)
            .order_by(PolarConnectionSwitch.switched_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def completed_for(session: Session, workspace_id: str, environment: str) -> PolarConnectAttempt | None:
    """The latest attempt that stored the workspace's connection to ``environment``."""
    return session.scalar(
        select(PolarConnectAttempt)
        .where(
            PolarConnectAttempt.workspace_id == workspace_id,
            PolarConnectAttempt.environment == environment,
            PolarConnectAttempt.completed_at.is_not(None),
        )
        .order_by(PolarConnectAttempt.completed_at.desc())
        .limit(1)
    )
