"""Creating provisioning runs. Enqueue a new run after commit (``runs.queue.enqueue_after_commit``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs import repository
from provisioning.runs.models import (
    ONE_ACTIVE_RUN_INDEX,
    ProvisioningRun,
    ProvisioningStep,
    RunBatch,
    RunStatus,
    StepStatus,
)
from provisioning.runs.saga import STEP_NAMES


class RunRefused(ConnectPolarError):
    """A run cannot be started or retried now; the message says why."""


class RunUnderWay(RunRefused):
    """The database refused a second queued or running run of one integration (its unique partial
    index): another transaction started one at the same moment."""


@dataclass(frozen=True)
class Started:
    run: ProvisioningRun
    created: bool  # False: a run was already queued or running, and this is it


def create_run(
    session: Session,
    integration: PolarIntegration,
    *,
    trigger: str,
    user_id: str | None = None,
    catalog_revision: str | None = None,
    batch_id: str | None = None,
) -> ProvisioningRun:
    """A queued run with its steps pending. ``catalog_revision`` pins the catalog it provisions
    (else the running catalog's, recorded when it starts).

    Raises ``RunUnderWay`` when the integration already has a queued or running run (the database's
    unique partial index says so; this transaction stays usable). Callers that may meet one use
    ``start_run`` or ``start_run_for_new_grant``, which return or replace it instead.
    """
    if integration.id is None:
        session.flush()
    run = ProvisioningRun(
        integration_id=integration.id,
        status=RunStatus.QUEUED,
        trigger=trigger,
        requested_by_user_id=user_id,
        catalog_revision=catalog_revision,
        batch_id=batch_id,
        attempts=0,
        api_calls={},
    )
    run.steps = [
        ProvisioningStep(name=name, position=i, status=StepStatus.PENDING, polar_ids=[])
        for i, name in enumerate(STEP_NAMES)
    ]
    try:
        with session.begin_nested():  # a refused insert rolls back to here, not the caller's work
            session.add(run)
            session.flush()
    except IntegrityError as exc:
        if ONE_ACTIVE_RUN_INDEX not in str(exc.orig) and "provisioning_run.integration_id" not in str(
            exc.orig
        ):
            raise
        raise RunUnderWay("another provisioning run of this connection is already under way") from None
    return run


def cancel_active_runs(session: Session, integration_id: str, reason: str) -> int:
    """Mark the integration's queued and running runs cancelled (their jobs stop at the next step)."""
    return len(repository.cancel_active(session, integration_id, reason))


def latest_run(session: Session, integration_id: str) -> ProvisioningRun | None:
    return repository.latest(session, integration_id)


# A connection in one of these states can be provisioned again by staff or the CLI.
PROVISIONABLE = (
    IntegrationStatus.READY,
    IntegrationStatus.FAILED,
    IntegrationStatus.PROVISIONING,
    IntegrationStatus.NEEDS_RECONNECT,
)


def start_run(
    session: Session,
    integration: PolarIntegration,
    *,
    trigger: str,
    user_id: str | None = None,
    batch_id: str | None = None,
) -> Started:
    """A new run for a connected integration, or the one already queued or running.

    Atomic: the integration's row is locked first, so of two requests at once (a double click, the
    CLI and the console) the second waits, then finds the first one's run.
    """
    locked = integrations.get(session, integration.id, lock=True)
    if locked is None or not locked.access_token:
        raise RunRefused("this workspace has no Polar connection to provision")
    if locked.status == IntegrationStatus.AWAITING_ORGANIZATION:
        raise RunRefused("the workspace's owner has not chosen a Polar organization yet")
    if locked.status not in PROVISIONABLE:
        raise RunRefused(f"the Polar connection is {locked.status}: nothing to provision")
    active = repository.active_run(session, locked.id)
    if active is not None:
        return Started(active, created=False)
    try:
        run = create_run(session, locked, trigger=trigger, user_id=user_id, batch_id=batch_id)
    except RunUnderWay:
        # The row lock was not enough (SQLite has none; a path that did not take it): the index
        # refused the second run, so return the one that won.
        active = repository.active_run(session, locked.id)
        if active is None:
            raise
        return Started(active, created=False)
    return Started(run, created=True)


REPLACED = (
    "Cancelled: Polar was connected again while this run was under way; a new run sets up that connection"
)


def start_run_for_new_grant(
    session: Session,
    integration: PolarIntegration,
    *,
    user_id: str | None,
    catalog_revision: str | None,
) -> Started:
    """The run a connect (or reconnect) or an organization choice starts: the connection's grant or
    organization has just changed, in this transaction.

    A run already **queued** is reused: it has not started, and a run reads the grant, the
    organization and the catalog only when it is claimed, so it does exactly what a new run would
    (its catalog pin is set to this connect's). A run already **running** is cancelled and replaced:
    it works with the grant that was just replaced (perhaps of another Polar account, or for
    another organization) and its own guard would stop it at its next step anyway, leaving nothing
    to set up the new connection. Its job stops at that step; the new run's job waits for the
    integration's saga lock meanwhile, so the two never overlap in Polar.

    Atomic like ``start_run``: the integration's row is locked first, and the unique partial index
    refuses a second active run should anything slip past the lock.
    """
    locked = integrations.get(session, integration.id, lock=True)
    assert locked is not None
    active = repository.active_run(session, locked.id)
    if active is not None and active.status == RunStatus.QUEUED:
        active.catalog_revision = catalog_revision
        session.flush()
        return Started(active, created=False)
    if active is not None:
        repository.cancel_active(session, locked.id, REPLACED)
    try:
        run = create_run(
            session, locked, trigger="connect", user_id=user_id, catalog_revision=catalog_revision
        )
    except RunUnderWay:
        active = repository.active_run(session, locked.id)
        if active is None:
            raise
        return Started(active, created=False)
    return Started(run, created=True)


def retry_run(session: Session, run_id: str) -> ProvisioningRun:
    """A failed run, queued again (its steps start over; they find what exists)."""
    run = repository.get(session, run_id)
    if run is None:
        raise RunRefused("no such run")
    integration = integrations.get(session, run.integration_id, lock=True)
    if integration is None or not integration.access_token:
        raise RunRefused("this workspace has no Polar connection any more")
    if run.status != RunStatus.FAILED:
        raise RunRefused(f"only a failed run can be retried; this one is {run.status}")
    if repository.active_run_id(session, integration.id) is not None:
        raise RunRefused("another run of this connection is under way")
    if not repository.requeue_failed(session, run_id):
        raise RunRefused("the run changed meanwhile; reload the page")
    session.refresh(run)
    return run


def create_batch(session: Session, *, user_id: str | None, reason: str, selection: str) -> RunBatch:
    batch = RunBatch(created_by_user_id=user_id, reason=reason, selection=selection, total=0)
    session.add(batch)
    session.flush()
    return batch
