"""Creating provisioning runs. Enqueue a new run after commit (``runs.queue.enqueue_after_commit``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from provisioning.integrations.models import PolarIntegration
from provisioning.runs import repository
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus
from provisioning.runs.saga import STEP_NAMES


def create_run(
    session: Session,
    integration: PolarIntegration,
    *,
    trigger: str,
    user_id: str | None = None,
    catalog_revision: str | None = None,
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
