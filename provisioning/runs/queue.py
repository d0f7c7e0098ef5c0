"""The queue of provisioning runs (RQ, explicit connections, JSON serializer) and its outbox.

A run is enqueued only after the transaction that created it commits. If Redis is down at that
moment the run keeps ``enqueued_at = NULL`` and the sweeper (``runs.periodic``) enqueues it later:
nothing is lost, and the job id ``provision-<run_id>`` keeps a run from being queued twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

from provisioning import background
from provisioning.background import connect
from provisioning.db import Database, get_database
from provisioning.runs import repository

log = logging.getLogger(__name__)
QUEUE_NAME = "provisioning"
JOB_TIMEOUT = 600
JOB_FUNCTION = "provisioning.runs.jobs.provision"
RETRY = Retry(max=4, interval=[5, 30, 120, 600])
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def job_id(run_id: str) -> str:
    return f"provision-{run_id}"


def get_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    return background.get_queue(connection, name)


def enqueue_run(
    run_id: str,
    redis_url: str,
    *,
    queue_name: str = QUEUE_NAME,
    retry: Retry | None = RETRY,
    replace_stale: bool = False,
) -> Job:
    """Put the run's job on the queue; a job already waiting or running for it is reused.

    Atomic: ``enqueue(..., unique=True)`` creates the job only if no job with its id exists (one
    Lua script in Redis), so the after-commit enqueue, the sweeper and a second click can't queue a
    run twice. A leftover job with that id that is no longer active (finished, failed, stopped, or
    started by a worker that died) is replaced under a short per-run Redis lock.

    ``replace_stale``: the run's lease lapsed (its worker is dead, whatever RQ's registry says for
    up to a minute and a half), so a job still marked started, or scheduled for a later retry, is
    replaced too; only one waiting on the queue is kept.
    """
    connection = connect(redis_url)
    queue = get_queue(connection, queue_name)
    try:
        return _enqueue_unique(queue, run_id, retry)
    except DuplicateJobError:
        pass
    with connection.lock(f"connect-polar:enqueue:{run_id}", timeout=30, blocking_timeout=10):
        existing = _fetch_job(connection, run_id)
        if existing is not None and replace_stale:
            if existing.get_status(refresh=False) == JobStatus.QUEUED:
                return existing
        elif existing is not None and job_is_active(connection, existing):
            return existing
        if existing is not None:
            existing.delete()
        try:
            return _enqueue_unique(queue, run_id, retry)
        except DuplicateJobError:  # a fast-path enqueue got in after the delete: that job is the run's
            job = _fetch_job(connection, run_id)
            assert job is not None
            return job


def _enqueue_unique(queue: Queue, run_id: str, retry: Retry | None) -> Job:
    return queue.enqueue(
        JOB_FUNCTION,
        run_id,
        job_id=job_id(run_id),
        unique=True,
        retry=retry,
        job_timeout=JOB_TIMEOUT,
        result_ttl=86400,
        failure_ttl=7 * 86400,
        description=f"provision run {run_id}",
    )


def enqueue_deferred(run_id: str, redis_url: str, at: datetime, *, queue_name: str = QUEUE_NAME) -> Job:
    """A job for a deferred run at ``at``, through RQ's scheduler (each worker runs one; it moves
    due jobs to the queue every second). Its id is its own: the run's usual job is the one that
    deferred it and is still finishing. Should it be lost, the sweeper enqueues the run a little
    after ``at`` (the run's ``not_before``)."""
    queue = get_queue(connect(redis_url), queue_name)
    return queue.enqueue_at(
        at,
        JOB_FUNCTION,
        run_id,
        job_id=f"{job_id(run_id)}-at-{int(at.timestamp() * 1000)}",
        retry=RETRY,
        job_timeout=JOB_TIMEOUT,
        result_ttl=3600,
        failure_ttl=7 * 86400,
        description=f"provision run {run_id} (deferred for Polar's rate limit)",
    )


def _fetch_job(connection: redis.Redis, run_id: str) -> Job | None:
    try:
        return Job.fetch(job_id(run_id), connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def job_is_active(connection: redis.Redis, job: Job) -> bool:
    """Waiting to run, or running in a worker that is still alive (its execution's heartbeat)."""
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        registry = StartedJobRegistry(job.origin, connection=connection, serializer=JSONSerializer)
        live = connection.zrangebyscore(registry.key, time.time(), "+inf")
        prefix = f"{job.id}:".encode()
        return any(isinstance(member, bytes) and member.startswith(prefix) for member in live)
    return status in ACTIVE_STATUSES


def mark_enqueued(database: Database, run_id: str) -> None:
    with database.transaction() as session:
        repository.mark_enqueued(session, run_id)


def has_active_job(connection: redis.Redis, run_id: str) -> bool:
    job = _fetch_job(connection, run_id)
    return job is not None and job_is_active(connection, job)


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
