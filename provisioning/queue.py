"""The provisioning queue (RQ, explicit connections, JSON serializer) and its outbox.

A run is enqueued only after the transaction that created it commits. If Redis is down at that
moment the run keeps ``enqueued_at = NULL`` and ``enqueue_pending`` (the sweeper) enqueues it
later: nothing is lost, and the job id ``provision-<run_id>`` keeps a run from being queued twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from provisioning.db import Database, get_database, utcnow
from provisioning.runs.models import ProvisioningRun, RunStatus

log = logging.getLogger(__name__)
QUEUE_NAME = "provisioning"
JOB_TIMEOUT = 600
RETRY = Retry(max=4, interval=[5, 30, 120, 600])
SWEEP_MIN_AGE = timedelta(seconds=5)
ACTIVE_STATUSES = ("queued", "started", "deferred", "scheduled")


def job_id(run_id: str) -> str:
    return f"provision-{run_id}"


def connect(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)


def get_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue_run(
    run_id: str, redis_url: str, *, queue_name: str = QUEUE_NAME, retry: Retry | None = RETRY
) -> Job:
    """Put the run's job on the queue; a job already waiting or running for it is reused."""
    connection = connect(redis_url)
    try:
        existing = Job.fetch(job_id(run_id), connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        existing = None
    if existing is not None and existing.get_status(refresh=False) in ACTIVE_STATUSES:
        return existing
    return get_queue(connection, queue_name).enqueue(
        "provisioning.tasks.provision",
        run_id,
        job_id=job_id(run_id),
        retry=retry,
        job_timeout=JOB_TIMEOUT,
        result_ttl=86400,
        failure_ttl=7 * 86400,
        description=f"provision run {run_id}",
    )


def mark_enqueued(database: Database, run_id: str) -> None:
    with database.transaction() as session:
        session.execute(
            update(ProvisioningRun).where(ProvisioningRun.id == run_id).values(enqueued_at=utcnow())
        )


_PENDING_KEY = "connect_polar_pending_enqueues"


def enqueue_after_commit(
    session: Session,
    run_id: str,
    redis_url: str,
    *,
    database: Database | None = None,
    queue_name: str = QUEUE_NAME,
) -> None:
    """Enqueue the run once ``session`` commits (never if it rolls back), then stamp ``enqueued_at``
    in its own short transaction. A Redis failure is logged, not raised: the run waits for the sweeper.
    """
    pending = session.info.setdefault(_PENDING_KEY, [])
    pending.append((run_id, redis_url, database, queue_name))
    if not event.contains(session, "after_commit", _on_commit):
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_soft_rollback", _on_rollback)


def _on_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    for run_id, redis_url, database, queue_name in pending:
        try:
            enqueue_run(run_id, redis_url, queue_name=queue_name)
        except redis.exceptions.RedisError as exc:
            log.warning("could not enqueue run %s (%s); the outbox sweeper will", run_id, type(exc).__name__)
            continue
        try:
            mark_enqueued(database or get_database(), run_id)
        except Exception as exc:  # the job is queued; a missing stamp only means a harmless re-enqueue
            log.warning("could not stamp enqueued_at on run %s: %s", run_id, type(exc).__name__)


def _on_rollback(session: Session, previous_transaction: Any) -> None:
    if getattr(previous_transaction, "parent", None) is None:  # the outermost transaction
        session.info.pop(_PENDING_KEY, None)


def enqueue_pending(
    database: Database, redis_url: str, *, min_age: timedelta = SWEEP_MIN_AGE, queue_name: str = QUEUE_NAME
) -> list[str]:
    """The outbox sweeper: enqueue queued runs that never reached Redis. Returns the run ids."""
    cutoff = utcnow() - min_age
    with database.transaction() as session:
        run_ids = list(
            session.scalars(
                select(ProvisioningRun.id).where(
                    ProvisioningRun.status == RunStatus.QUEUED.value,
                    ProvisioningRun.enqueued_at.is_(None),
                    ProvisioningRun.created_at <= cutoff,
                )
            )
        )
    done = []
    for run_id in run_ids:
        try:
            enqueue_run(run_id, redis_url, queue_name=queue_name)
        except redis.exceptions.RedisError as exc:
            log.warning("sweeper could not enqueue run %s (%s)", run_id, type(exc).__name__)
            break
        mark_enqueued(database, run_id)
        done.append(run_id)
    return done
