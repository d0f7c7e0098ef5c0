"""Rolling a catalog change out to the fleet: a run for every ready connection provisioned with
another catalog revision than the running one.

Resumable and idempotent by construction: a connection already at the running revision is not
selected, and ``start_run`` returns a connection's run under way instead of starting a second, so
running the rollout again after a crash (or while it is under way) only starts what is missing.
Failures do not stop it: a connection that cannot be started is counted and skipped. The runs are
one batch (``run_batch``), whose progress the CLI and the support console follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.runs.models import RunBatch
from provisioning.runs.queue import enqueue_after_commit
from provisioning.runs.service import RunRefused, create_batch, start_run


@dataclass
class RolloutPlan:
    revision: str
    integration_ids: list[str] = field(default_factory=list)


@dataclass
class RolloutStarted:
    batch: RunBatch
    started: int = 0
    already_running: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (integration id, why)


def plan_rollout(
    session: Session,
    revision: str,
    *,
    environment: str | None = None,
    workspace_ids: Iterable[str] = (),
) -> RolloutPlan:
    """The ready connections whose provisioned catalog revision is not ``revision``."""
    query = select(PolarIntegration.id).where(
        PolarIntegration.status == IntegrationStatus.READY,
        PolarIntegration.access_token.is_not(None),
        (PolarIntegration.catalog_revision != revision) | PolarIntegration.catalog_revision.is_(None),
    )
    if environment:
        query = query.where(PolarIntegration.environment == environment)
    wanted = list(workspace_ids)
    if wanted:
        query = query.where(PolarIntegration.workspace_id.in_(wanted))
    return RolloutPlan(revision, list(session.scalars(query.order_by(PolarIntegration.id))))


def start_rollout(
    session: Session,
    plan: RolloutPlan,
    redis_url: str,
    *,
    user_id: str | None = None,
    reason: str = "",
    chunk: int = 100,
) -> RolloutStarted:
    """Start the plan's runs as one batch, committing every ``chunk`` connections (each run is
    enqueued once its chunk commits). The caller's session must hold no other pending work."""
    batch = create_batch(
        session,
        user_id=user_id,
        reason=reason or f"catalog rollout to revision {plan.revision}",
        selection=f"catalog rollout to revision {plan.revision}: {len(plan.integration_ids)} connection(s)",
    )
    session.commit()
    outcome = RolloutStarted(batch)
    for offset in range(0, len(plan.integration_ids), chunk):
        for integration_id in plan.integration_ids[offset : offset + chunk]:
            integration = session.get(PolarIntegration, integration_id)
            if integration is None:
                outcome.refused.append((integration_id, "deleted meanwhile"))
                continue
            try:
                started = start_run(session, integration, trigger="rollout", batch_id=batch.id)
            except RunRefused as exc:
                outcome.refused.append((integration_id, str(exc)))
                continue
            if started.created:
                outcome.started += 1
                enqueue_after_commit(session, started.run.id, redis_url)
            else:
                outcome.already_running += 1
        batch.total = outcome.started
        session.commit()
    return outcome
