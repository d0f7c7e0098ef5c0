"""The console's queries: across the web layer's accounts and the domain's connections, runs and
events. Each page is a fixed number of indexed queries, whatever the number of workspaces."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, tuple_, union
from sqlalchemy.orm import Session, selectinload

from app.accounts.models import Membership, Role, User, Workspace
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.webhooks.models import PolarWebhookEvent

PROBLEMS = (IntegrationStatus.FAILED, IntegrationStatus.NEEDS_RECONNECT)


NEVER_CONNECTED = "never_connected"


@dataclass(frozen=True)
class WorkspaceFilter:
    q: str = ""
    status: IntegrationStatus | None = None
    never_connected: bool = False
    environment: str | None = None
    behind_revision: str | None = None  # set: only connections provisioned at another revision
    problem: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.q
            or self.status
            or self.never_connected
            or self.environment
            or self.behind_revision
            or self.problem
        )

    @property
    def only_status(self) -> bool:
        return bool(self.status) and not (
            self.q or self.never_connected or self.environment or self.behind_revision or self.problem
        )


# Where the list stands: the (activity time, row id) of the last row shown; the next page is older.
Cursor = tuple[datetime, str]


@dataclass(frozen=True)
class ListRow:
    workspace_id: str
    workspace_name: str
    integration_id: str | None
    environment: str | None
    status: IntegrationStatus | None
    organization: str | None
    catalog_revision: str | None
    last_error: str | None
    activity_at: datetime
    key: str  # the row's id in the ordering (the connection's, else the workspace's)
    owners: tuple[str, ...] = ()


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matching_workspaces(q: str) -> Any:
    """Ids of workspaces whose name, owner's email, or Polar organization (id, slug, name) contains
    ``q``: each arm uses its own trigram index; a full workspace id matches too."""
    pattern = _like(q)
    arms = [
        select(Workspace.id).where(Workspace.name.ilike(pattern, escape="\\")),
        select(Membership.workspace_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.role == Role.OWNER, User.email.ilike(pattern, escape="\\")),
        select(PolarIntegration.workspace_id).where(
            or_(
                PolarIntegration.polar_org_id.ilike(pattern, escape="\\"),
                PolarIntegration.polar_org_slug.ilike(pattern, escape="\\"),
                PolarIntegration.polar_org_name.ilike(pattern, escape="\\"),
            )
        ),
    ]
    if len(q) == 36:
        arms.append(select(Workspace.id).where(Workspace.id == q))
    return union(*arms)


def _connection_conditions(where: WorkspaceFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
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
        conditions.append(or_(PolarIntegration.status.in_(PROBLEMS), PolarIntegration.health_ok.is_(False)))
    return conditions


def _page_query(where: WorkspaceFilter) -> tuple[Any, Any, Any]:
    """(query, activity, key): connections in order of activity, driven by an index, or, for a
    search or the never-connected, workspaces with their connections."""
    columns = (
        Workspace.id,
        Workspace.name,
        PolarIntegration.id,
        PolarIntegration.environment,
        PolarIntegration.status,
        PolarIntegration.polar_org_name,
        PolarIntegration.polar_org_id,
        PolarIntegration.catalog_revision,
        PolarIntegration.last_error,
    )
    activity: Any
    key: Any
    if not (where.q or where.never_connected):
        activity, key = PolarIntegration.updated_at, PolarIntegration.id
        query = (
            select(*columns, activity, key)
            .select_from(PolarIntegration)
            .join(Workspace, Workspace.id == PolarIntegration.workspace_id)
            .where(*_connection_conditions(where))
        )
        return query, activity, key
    activity = func.coalesce(PolarIntegration.updated_at, Workspace.created_at)
    key = func.coalesce(PolarIntegration.id, Workspace.id)
    query = (
        select(*columns, activity, key)
        .select_from(Workspace)
        .outerjoin(PolarIntegration, PolarIntegration.workspace_id == Workspace.id)
        .where(*_connection_conditions(where))
    )
    if where.q:
        query = query.where(Workspace.id.in_(_matching_workspaces(where.q)))
    if where.never_connected:
        query = query.where(PolarIntegration.id.is_(None))
    return query, activity, key


def list_workspaces(
    session: Session, where: WorkspaceFilter, *, limit: int, before: Cursor | None = None
) -> tuple[list[ListRow], Cursor | None]:
    """One page of (workspace, connection) rows, the latest activity first, and the cursor of the
    next (older) page, if any. Keyset paging: a page deep in the list costs what the first does."""
    query, activity, key = _page_query(where)
    if before is not None:
        query = query.where(tuple_(activity, key) < tuple_(literal(before[0]), literal(before[1])))
    found = session.execute(query.order_by(activity.desc(), key.desc()).limit(limit + 1)).all()
    more = len(found) > limit
    found = found[:limit]
    owners = owners_of(session, {r[0] for r in found})
    rows = [
        ListRow(
            workspace_id=r[0],
            workspace_name=r[1],
            integration_id=r[2],
            environment=r[3],
            status=r[4],
            organization=r[5] or r[6],
            catalog_revision=r[7],
            last_error=r[8],
            activity_at=r[9],
            key=r[10],
            owners=tuple(owners.get(r[0], ())),
        )
        for r in found
    ]
    return rows, ((rows[-1].activity_at, rows[-1].key) if more and rows else None)


def count_matching(session: Session, where: WorkspaceFilter, *, cap: int) -> int:
    """How many rows a filter matches, counted up to ``cap`` (the list says "cap+" beyond)."""
    query, _, _ = _page_query(where)
    return int(session.scalar(select(func.count()).select_from(query.limit(cap + 1).subquery())) or 0)


def matching_integration_ids(session: Session, where: WorkspaceFilter, *, limit: int) -> list[str]:
    """The connections a filter matches (for "re-provision all matching"), at most ``limit``."""
    query, _, _ = _page_query(where)
    return [row[2] for row in session.execute(query.limit(limit)) if row[2] is not None]


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
    """Connections per status: one index-only aggregate. (Workspaces that never connected are a
    filter of their own: counting them costs a scan of every workspace.)"""
    return {
        str(status): int(n)
        for status, n in session.execute(
            select(PolarIntegration.status, func.count()).group_by(PolarIntegration.status)
        )
    }


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
            .options(
                selectinload(PolarIntegration.product_mappings), selectinload(PolarIntegration.meter_mappings)
            )
        )
    )


def oldest_queued_run(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(ProvisioningRun.created_at)).where(ProvisioningRun.status == RunStatus.QUEUED)
    )
