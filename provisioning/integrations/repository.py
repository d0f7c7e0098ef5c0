"""Queries on ``polar_integration`` and ``polar_product_mapping``: the only place that reads or
writes them with SQL. Functions flush at most; their callers' handlers and jobs commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session

from provisioning.config import PolarEnvironment
from provisioning.db import utcnow
from provisioning.ids import new_id
from provisioning.integrations.models import (
    IntegrationStatus,
    PolarIntegration,
    PolarMeterMapping,
    PolarProductMapping,
)

# The web layer owns ``workspace``; the domain only reads its name.
workspace_table = table("workspace", column("id"), column("name"))


def get(session: Session, integration_id: str, *, lock: bool = False) -> PolarIntegration | None:
    return session.get(PolarIntegration, integration_id, with_for_update=lock)


def for_workspace(
    session: Session, workspace_id: str, environment: str | None = None
) -> PolarIntegration | None:
    """The workspace's connection to ``environment``; without one, its only (or first) connection."""
    query = select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id)
    if environment is not None:
        query = query.where(PolarIntegration.environment == environment)
    return session.scalars(query.order_by(PolarIntegration.created_at)).first()


def all_for_workspace(session: Session, workspace_id: str) -> list[PolarIntegration]:
    return list(
        session.scalars(
            select(PolarIntegration)
            .where(PolarIntegration.workspace_id == workspace_id)
            .order_by(PolarIntegration.created_at)
        )
    )


def add(session: Session, workspace_id: str, environment: PolarEnvironment) -> PolarIntegration:
    integration = PolarIntegration(
        id=new_id(),  # known before the first flush: its secrets are encrypted bound to it
        workspace_id=workspace_id,
        environment=environment,
        status=IntegrationStatus.CONNECTING,
        granted_organization_ids=[],
        reachable_organizations=[],
    )
    session.add(integration)
    return integration


def any_access_token(session: Session) -> tuple[str, str] | None:
    """(id, access token ciphertext) of one connected integration, if any."""
    row = session.execute(
        select(PolarIntegration.id, PolarIntegration.access_token)
        .where(PolarIntegration.access_token.is_not(None))
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None and row[1] is not None else None


def ids(session: Session) -> list[str]:
    return list(session.scalars(select(PolarIntegration.id)))


class ConnectionState(NamedTuple):
    status: IntegrationStatus
    access_token: str | None  # ciphertext
    grant_id: str | None


def connection_state(session: Session, integration_id: str, *, lock: bool = False) -> ConnectionState | None:
    """The status and access token as committed; with ``lock`` the row stays locked."""
    query = select(PolarIntegration.status, PolarIntegration.access_token, PolarIntegration.grant_id).where(
        PolarIntegration.id == integration_id
    )
    row = session.execute(query.with_for_update() if lock else query).one_or_none()
    return ConnectionState(row[0], row[1], row[2]) if row is not None else None


class TokenRow(NamedTuple):
    environment: str
    access_token: str | None  # ciphertext
    refresh_token: str | None  # ciphertext
    refresh_unanswered: bool


def token_row(session: Session, integration_id: str) -> TokenRow | None:
    """The token pair as committed (ciphertexts), for a refresh under the token lock."""
    row = session.execute(
        select(
            PolarIntegration.environment,
            PolarIntegration.access_token,
            PolarIntegration.refresh_token,
            PolarIntegration.token_refresh_unanswered_at,
        ).where(PolarIntegration.id == integration_id)
    ).one_or_none()
    return TokenRow(row[0], row[1], row[2], row[3] is not None) if row is not None else None


def mark_refresh_unanswered_if_unchanged(
    session: Session, integration_id: str, read_ciphertext: str, message: str
) -> None:
    """A refresh with this refresh token got no answer: remember it (and say so), while the row
    still holds that token."""
    session.execute(
        update(PolarIntegration)
        .where(PolarIntegration.id == integration_id, PolarIntegration.refresh_token == read_ciphertext)
        .values(token_refresh_unanswered_at=utcnow(), last_error=message, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def refresh_token_ciphertext(session: Session, integration_id: str) -> str | None:
    return session.execute(
        select(PolarIntegration.refresh_token).where(PolarIntegration.id == integration_id)
    ).scalar()


def replace_tokens_if_unchanged(
    session: Session, integration_id: str, read_ciphertext: str, values: dict[str, Any]
) -> bool:
    """Write a refreshed pair only over the refresh token it replaces (a disconnect or reconnect
    that got in meanwhile wins)."""
    result = session.execute(
        update(PolarIntegration)
        .where(PolarIntegration.id == integration_id, PolarIntegration.refresh_token == read_ciphertext)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def mark_needs_reconnect_if_unchanged(
    session: Session, integration_id: str, read_ciphertext: str | None, message: str
) -> None:
    """needs_reconnect, only while the row still holds the pair that failed."""
    condition = (
        PolarIntegration.refresh_token.is_(None)
        if read_ciphertext is None
        else PolarIntegration.refresh_token == read_ciphertext
    )
    session.execute(
        update(PolarIntegration)
        .where(PolarIntegration.id == integration_id, PolarIntegration.access_token.is_not(None), condition)
        .values(status=IntegrationStatus.NEEDS_RECONNECT, last_error=message, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def fail_if_provisioning(session: Session, integration_id: str, message: str) -> None:
    session.execute(
        update(PolarIntegration)
        .where(
            PolarIntegration.id == integration_id,
            PolarIntegration.status == IntegrationStatus.PROVISIONING,
        )
        .values(status=IntegrationStatus.FAILED, last_error=message, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def mappings(session: Session, integration_id: str) -> Sequence[PolarProductMapping]:
    return session.scalars(
        select(PolarProductMapping).where(PolarProductMapping.integration_id == integration_id)
    ).all()


def meter_mappings(session: Session, integration_id: str) -> Sequence[PolarMeterMapping]:
    return session.scalars(
        select(PolarMeterMapping).where(PolarMeterMapping.integration_id == integration_id)
    ).all()


def workspace_name(session: Session, workspace_id: str) -> str:
    name = session.execute(
        select(workspace_table.c.name).where(workspace_table.c.id == workspace_id)
    ).scalar()
    return str(name or "Workspace")
