"""Queries on ``provisioning_run`` and ``provisioning_step``: the only SQL about runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from provisioning.db import utcnow
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
UNFINISHED_STEPS = (StepStatus.PENDING, StepStatus.RUNNING)


def get(session: Session, run_id: str) -> ProvisioningRun | None:
    return session.get(ProvisioningRun, run_id)


def status(session: Session, run_id: str, *, lock: bool = False) -> RunStatus | None:
    query = select(ProvisioningRun.status).where(ProvisioningRun.id == run_id)
    return session.execute(query.with_for_update() if lock else query).scalar()


def claim(session: Session, run_id: str, lease: timedelta) -> int | None:
    """queued → running, atomically: of two jobs for one run, only one gets it. Returns the run's
    new attempt number (the fence its job checks before each step), or None. Its lease runs for
    ``lease``; its steps start over as pending (they find what exists)."""
    now = utcnow()
    attempt = session.scalar(
        update(ProvisioningRun)
        .where(ProvisioningRun.id == run_id, ProvisioningRun.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            started_at=now,
            lease_expires_at=now + lease,
            finished_at=None,
            error=None,
            attempts=func.coalesce(ProvisioningRun.attempts, 0) + 1,
        )
        .returning(ProvisioningRun.attempts)
        .execution_options(synchronize_session=False)
    )
    claimed = attempt is not None
    if claimed:
        session.execute(
            update(ProvisioningStep)
            .where(ProvisioningStep.run_id == run_id)
            .values(status=StepStatus.PENDING, error=None, duration_ms=None)
            .execution_options(synchronize_session=False)
        )
    return attempt


def renew_lease(session: Session, run_id: str, attempt: int, lease: timedelta) -> bool:
    """The worker still runs this attempt of the run: extend its lease (False: the run is over, or
    another attempt took it over)."""
    result = session.execute(
        update(ProvisioningRun)
        .where(
            ProvisioningRun.id == run_id,
            ProvisioningRun.status == RunStatus.RUNNING,
            ProvisioningRun.attempts == attempt,
        )
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _lapsed(now: datetime, legacy_started_before: datetime) -> ColumnElement[bool]:
    """Running with its lease lapsed (a run from before leases: started long ago)."""
    return and_(
        ProvisioningRun.status == RunStatus.RUNNING,
        or_(
            ProvisioningRun.lease_expires_at < now,
            and_(
                ProvisioningRun.lease_expires_at.is_(None),
                ProvisioningRun.started_at <= legacy_started_before,
            ),
        ),
    )


def lapsed_running(session: Session, now: datetime, legacy_started_before: datetime) -> list[tuple[str, int]]:
    """(id, attempts) of running runs whose worker stopped renewing their lease."""
    rows = session.execute(
        select(ProvisioningRun.id, ProvisioningRun.attempts).where(_lapsed(now, legacy_started_before))
    )
    return [(run_id, int(attempts or 0)) for run_id, attempts in rows]


def requeue_lapsed(
    session: Session, run_id: str, now: datetime, legacy_started_before: datetime, message: str
) -> bool:
    """running → queued for a run whose lease lapsed, to be resumed by its next job."""
    result = session.execute(
        update(ProvisioningRun)
        .where(ProvisioningRun.id == run_id, _lapsed(now, legacy_started_before))
        .values(status=RunStatus.QUEUED, lease_expires_at=None, error=message)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def lease_of(session: Session, run_id: str) -> tuple[RunStatus, datetime | None, int] | None:
    row = session.execute(
        select(ProvisioningRun.status, ProvisioningRun.lease_expires_at, ProvisioningRun.attempts).where(
            ProvisioningRun.id == run_id
        )
    ).one_or_none()
    return (row[0], row[1], int(row[2] or 0)) if row is not None else None


def run_state(session: Session, run_id: str, *, lock: bool = False) -> tuple[RunStatus, int] | None:
    """(status, attempt) as committed; with ``lock`` the row stays locked."""
    query = select(ProvisioningRun.status, ProvisioningRun.attempts).where(ProvisioningRun.id == run_id)
    row = session.execute(query.with_for_update() if lock else query).one_or_none()
    return (row[0], int(row[1] or 0)) if row is not None else None


def skip_unfinished_steps(session: Session, run_ids: list[str]) -> None:
    session.execute(
        update(ProvisioningStep)
        .where(ProvisioningStep.run_id.in_(run_ids), ProvisioningStep.status.in_(UNFINISHED_STEPS))
        .values(status=StepStatus.SKIPPED)
        .execution_options(synchronize_session=False)
    )


def requeue_failed(session: Session, run_id: str) -> bool:
    """failed → queued, to be enqueued again (a retry from the console)."""
    result = session.execute(
        update(ProvisioningRun)
        .where(ProvisioningRun.id == run_id, ProvisioningRun.status == RunStatus.FAILED)
        .values(status=RunStatus.QUEUED, error=None, finished_at=None, enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def batch_progress(session: Session, batch_id: str) -> dict[RunStatus, int]:
    rows = session.execute(
        select(ProvisioningRun.status, func.count())
        .where(ProvisioningRun.batch_id == batch_id)
        .group_by(ProvisioningRun.status)
    )
    return {status: int(count) for status, count in rows}


def cancel_if_running(session: Session, run_id: str, reason: str, *, attempt: int | None = None) -> None:
    """Cancel the run if running (and, given ``attempt``, still at that attempt: a job whose run was
    resumed by another leaves it alone)."""
    condition = (
        ProvisioningRun.attempts == attempt if attempt is not None else ProvisioningRun.id.is_not(None)
    )
    result = session.execute(
        update(ProvisioningRun)
        .where(ProvisioningRun.id == run_id, ProvisioningRun.status == RunStatus.RUNNING, condition)
        .values(status=RunStatus.CANCELLED, error=reason, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0):
        skip_unfinished_steps(session, [run_id])


def cancel_active(session: Session, integration_id: str, reason: str) -> list[str]:
    """Cancel the integration's queued and running runs; returns their ids."""
    run_ids = list(
        session.scalars(
            update(ProvisioningRun)
            .where(ProvisioningRun.integration_id == integration_id, ProvisioningRun.status.in_(ACTIVE))
            .values(status=RunStatus.CANCELLED, error=reason, finished_at=utcnow())
            .returning(ProvisioningRun.id)
            .execution_options(synchronize_session=False)
        )
    )
    if run_ids:
        skip_unfinished_steps(session, run_ids)
        for run in session.scalars(select(ProvisioningRun).where(ProvisioningRun.id.in_(run_ids))):
            session.expire(run)
    return run_ids


def latest(session: Session, integration_id: str) -> ProvisioningRun | None:
    return session.scalars(
        select(ProvisioningRun)
        .where(ProvisioningRun.integration_id == integration_id)
        .order_by(ProvisioningRun.created_at.desc(), ProvisioningRun.id.desc())
        .limit(1)
    ).first()


def for_integration(session: Session, integration_id: str) -> list[ProvisioningRun]:
    return list(
        session.scalars(
            select(ProvisioningRun)
            .where(ProvisioningRun.integration_id == integration_id)
            .order_by(ProvisioningRun.created_at, ProvisioningRun.id)
        )
    )


def active_run_id(session: Session, integration_id: str) -> str | None:
    return session.scalar(
        select(ProvisioningRun.id).where(
            ProvisioningRun.integration_id == integration_id, ProvisioningRun.status.in_(ACTIVE)
        )
    )


def active_run(session: Session, integration_id: str) -> ProvisioningRun | None:
    """The integration's queued or running run (at most one: a unique partial index), as committed."""
    return session.scalars(
        select(ProvisioningRun)
        .where(ProvisioningRun.integration_id == integration_id, ProvisioningRun.status.in_(ACTIVE))
        .execution_options(populate_existing=True)
    ).first()


def not_enqueued(session: Session, integration_id: str) -> list[str]:
    """The integration's queued runs that never reached the queue (created in this transaction)."""
    return _run_ids(
        session,
        ProvisioningRun.integration_id == integration_id,
        ProvisioningRun.status == RunStatus.QUEUED,
        ProvisioningRun.enqueued_at.is_(None),
    )


def mark_enqueued(session: Session, run_id: str) -> None:
    session.execute(update(ProvisioningRun).where(ProvisioningRun.id == run_id).values(enqueued_at=utcnow()))


# -- what the sweeper looks at -------------------------------------------------------------------


def _run_ids(session: Session, *conditions: ColumnElement[bool]) -> list[str]:
    return list(session.scalars(select(ProvisioningRun.id).where(*conditions)))


def queued_never_enqueued(
    session: Session, created_before: datetime, now: datetime | None = None
) -> list[str]:
    """Queued runs with no job yet: created before ``created_before``, and not deferred past ``now``."""
    now = now or utcnow()
    return _run_ids(
        session,
        ProvisioningRun.status == RunStatus.QUEUED,
        ProvisioningRun.enqueued_at.is_(None),
        ProvisioningRun.created_at <= created_before,
        or_(ProvisioningRun.not_before.is_(None), ProvisioningRun.not_before <= now),
    )


def defer(session: Session, run_id: str, attempt: int, until: datetime, message: str) -> bool:
    """running → queued until ``until`` without a job (the sweeper enqueues it then), for the job
    holding ``attempt``; the deferral does not count as an attempt. False if the run moved on."""
    deferred = session.scalar(
        update(ProvisioningRun)
        .where(
            ProvisioningRun.id == run_id,
            ProvisioningRun.status == RunStatus.RUNNING,
            ProvisioningRun.attempts == attempt,
        )
        .values(
            status=RunStatus.QUEUED,
            attempts=attempt - 1,
            enqueued_at=None,
            lease_expires_at=None,
            not_before=until,
            error=message,
        )
        .returning(ProvisioningRun.id)
        .execution_options(synchronize_session=False)
    )
    return deferred is not None


def queued_enqueued_before(session: Session, enqueued_before: datetime) -> list[str]:
    return _run_ids(
        session,
        ProvisioningRun.status == RunStatus.QUEUED,
        ProvisioningRun.enqueued_at.is_not(None),
        ProvisioningRun.enqueued_at <= enqueued_before,
    )


def fail_lapsed(
    session: Session, run_id: str, now: datetime, legacy_started_before: datetime, message: str
) -> str | None:
    """running → failed for a run whose lease lapsed and that is not resumed again; returns its
    integration id, or None if the run finished (or was resumed) meanwhile."""
    integration_id = session.scalar(
        update(ProvisioningRun)
        .where(ProvisioningRun.id == run_id, _lapsed(now, legacy_started_before))
        .values(status=RunStatus.FAILED, error=message, finished_at=utcnow(), lease_expires_at=None)
        .returning(ProvisioningRun.integration_id)
        .execution_options(synchronize_session=False)
    )
    if integration_id is not None:
        skip_unfinished_steps(session, [run_id])
    return integration_id
