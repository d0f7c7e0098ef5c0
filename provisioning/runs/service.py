"""Creating provisioning runs. Enqueue a new run after commit (``runs.queue.enqueue_after_commit``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs import repository
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunBatch, RunStatus, StepStatus
from provisioning.runs.saga import STEP_NAMES


class RunRefused(ConnectPolarError):
    """A run cannot be started or retried now; the message says why."""


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
    (else the running catalog's, recorded when it starts)."""
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
    session.add(run)
    session.flush()
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
    active = repository.active_run_id(session, locked.id)
    if active is not None:
        run = repository.get(session, active)
        assert run is not None
        return Started(run, created=False)
    run = create_run(session, locked, trigger=trigger, user_id=user_id, batch_id=batch_id)
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
