"""The console's queries: across the web layer's accounts and the domain's connections, runs and
events. Each page is a fixed number of indexed queries, whatever the number of workspaces."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.accounts.models import Membership, Role, User, Workspace
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.webhooks.models import PolarWebhookEvent

PROBLEMS = (IntegrationStatus.FAILED, IntegrationStatus.NEEDS_RECONNECT)


@dataclass(frozen=True)
class WorkspaceFilter:
    q: str = ""
    status: IntegrationStatus | None = None
    environment: str | None = None
    behind_revision: str | None = None  # set: only connections provisioned at another revision
    problem: bool = False

    @property
    def any(self) -> bool:
        return bool(self.q or self.status or self.environment or self.behind_revision or self.problem)


@dataclass(frozen=True)
class ListRow:
    workspace_id: str
    workspace_name: str
    workspace_created_at: datetime
    integration_id: str | None
    environment: str | None
    status: IntegrationStatus | None
    organization: str | None
    catalog_revision: str | None
    last_error: str | None
    activity_at: datetime
    owners: tuple[str, ...] = ()


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(where: WorkspaceFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.q:
        pattern = _like(where.q.strip())
        owner_matches = exists(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(
                Membership.workspace_id == Workspace.id,
                Membership.role == Role.OWNER,
                User.email.ilike(pattern, escape="\\"),
            )
        )
        conditions.append(
            or_(
                Workspace.name.ilike(pattern, escape="\\"),
                Workspace.id == where.q.strip(),
                PolarIntegration.polar_org_id.ilike(pattern, escape="\\"),
                PolarIntegration.polar_org_slug.ilike(pattern, escape="\\"),
                PolarIntegration.polar_org_name.ilike(pattern, escape="\\"),
                owner_matches,
            )
        )
    if where.status is not None:
        conditions.append(PolarIntegration.status == where.status)
    if where.environment:
        conditions.append(PolarIntegration.environment == where.environment)
    if where.behind_revision:
        conditions.append(
            and_(
                PolarIntegration.status == IntegrationStatus.READY,
                PolarIntegration.catalog_revision != where.behind_revision,
            )
        )
    if where.problem:
        conditions.append(PolarIntegration.status.in_(PROBLEMS))
    return conditions


def list_workspaces(
    session: Session, where: WorkspaceFilter, *, limit: int, offset: int
) -> tuple[list[ListRow], int]:
    """One page of (workspace, connection) rows, the latest activity first, and how many in all."""
    total = session.scalar(
        select(func.count())
        .select_from(Workspace)
        .outerjoin(PolarIntegration, PolarIntegration.workspace_id == Workspace.id)
        .where(*_conditions(where))
    )
    activity = func.coalesce(PolarIntegration.updated_at, Workspace.created_at)
    found = session.execute(
        select(
            Workspace.id,
            Workspace.name,
            Workspace.created_at,
            PolarIntegration.id,
            PolarIntegration.environment,
            PolarIntegration.status,
            PolarIntegration.polar_org_name,
            PolarIntegration.polar_org_id,
            PolarIntegration.catalog_revision,
            PolarIntegration.last_error,
            activity.label("activity_at"),
        )
        .select_from(Workspace)
        .outerjoin(PolarIntegration, PolarIntegration.workspace_id == Workspace.id)
        .where(*_conditions(where))
        .order_by(activity.desc(), Workspace.id, PolarIntegration.environment)
        .limit(limit)
        .offset(offset)
    ).all()
    owners = owners_of(session, {r[0] for r in found})
    rows = [
        ListRow(
            workspace_id=r[0],
            workspace_name=r[1],
            workspace_created_at=r[2],
            integration_id=r[3],
            environment=r[4],
            status=r[5],
            organization=r[6] or r[7],
            catalog_revision=r[8],
            last_error=r[9],
            activity_at=r[10],
            owners=tuple(owners.get(r[0], ())),
        )
        for r in found
    ]
    return rows, int(total or 0)


def matching_integration_ids(session: Session, where: WorkspaceFilter, *, limit: int) -> list[str]:
    """The connections a filter matches (for "re-provision all matching"), at most ``limit``."""
    query = (
        select(PolarIntegration.id)
        .select_from(Workspace)
        .join(PolarIntegration, PolarIntegration.workspace_id == Workspace.id)
        .where(*_conditions(where))
        .order_by(PolarIntegration.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def owners_of(session: Session, workspace_ids: set[str]) -> dict[str, list[str]]:
    if not workspace_ids:
        return {}
    rows = session.execute(
        select(Membership.workspace_id, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id.in_(workspace_ids), Membership.role == Role.OWNER)
        .order_by(User.email)
    )
    out: dict[str, list[str]] = defaultdict(list)
    for workspace_id, email in rows:
        out[workspace_id].append(email)
    return out


def status_counts(session: Session) -> dict[str, int]:
    """Connections per status, plus workspaces that never connected."""
    counts = {
        str(status): int(n)
        for status, n in session.execute(
            select(PolarIntegration.status, func.count()).group_by(PolarIntegration.status)
        )
    }
    never = session.scalar(
        select(func.count())
        .select_from(Workspace)
        .where(~exists(select(PolarIntegration.id).where(PolarIntegration.workspace_id == Workspace.id)))
    )
    counts["never_connected"] = int(never or 0)
    return counts


def workspace(session: Session, workspace_id: str) -> Workspace | None:
    return session.get(Workspace, workspace_id)


def members(session: Session, workspace_id: str) -> Sequence[tuple[User, Role]]:
    rows = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(Membership.role.desc(), User.email)
    )
    return [(user, role) for user, role in rows]


def users_by_id(session: Session, user_ids: set[str]) -> dict[str, str]:
    """Emails of the given users (who connected, who started a run)."""
    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {user_id: email for user_id, email in rows}


def recent_runs(session: Session, integration_id: str, *, limit: int) -> list[ProvisioningRun]:
    return list(
        session.scalars(
            select(ProvisioningRun)
            .where(ProvisioningRun.integration_id == integration_id)
            .order_by(ProvisioningRun.created_at.desc(), ProvisioningRun.id.desc())
            .limit(limit)
            .options(selectinload(ProvisioningRun.steps))
        )
    )


def count_runs(session: Session, integration_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ProvisioningRun)
            .where(ProvisioningRun.integration_id == integration_id)
        )
        or 0
    )


def recent_events(session: Session, integration_id: str, *, limit: int) -> list[PolarWebhookEvent]:
    return list(
        session.scalars(
            select(PolarWebhookEvent)
            .where(PolarWebhookEvent.integration_id == integration_id)
            .order_by(PolarWebhookEvent.received_at.desc(), PolarWebhookEvent.id.desc())
            .limit(limit)
        )
    )


def connections(session: Session, workspace_id: str) -> list[PolarIntegration]:
    return list(
        session.scalars(
            select(PolarIntegration)
            .where(PolarIntegration.workspace_id == workspace_id)
            .order_by(PolarIntegration.environment)
            .options(selectinload(PolarIntegration.product_mappings))
        )
    )


def oldest_queued_run(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(ProvisioningRun.created_at)).where(ProvisioningRun.status == RunStatus.QUEUED)
    )
