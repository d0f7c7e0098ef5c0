"""The worker's periodic work on runs: the outbox sweeper, resuming abandoned runs, the reaper.

- queued runs that never reached Redis (``enqueued_at`` unset) are enqueued;
- queued runs whose job is gone or no longer active (a retry lost with its worker, a job that gave
  up waiting for the integration's lock) are enqueued again;
- running runs whose lease lapsed (their worker or job process was killed: nothing renews it) are
  put back to queued and given a new job, which resumes them (``runs.lease``); one abandoned
  ``MAX_ATTEMPTS`` times is failed instead, with a message that says what to do (the reaper).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import redis
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from provisioning.db import Database, utcnow
from provisioning.runs import repository
from provisioning.runs.lease import LEGACY_REAP_AFTER, resume_abandoned
from provisioning.runs.queue import QUEUE_NAME, connect, enqueue_run, has_active_job, mark_enqueued

log = logging.getLogger(__name__)
SWEEP_MIN_AGE = timedelta(seconds=5)


def enqueue_pending(
    database: Database,
    redis_url: str,
    *,
    min_age: timedelta = SWEEP_MIN_AGE,
    queue_name: str = QUEUE_NAME,
) -> list[str]:
    """The outbox sweeper, resumer and reaper. Returns the ids of the runs it (re-)enqueued."""
    now = utcnow()
    cutoff = now - min_age
    with database.transaction() as session:
        # A deferred run has a job scheduled for its not_before: enqueue it only if that one is
        # late by min_age too (lost with Redis, say).
        never_enqueued = repository.queued_never_enqueued(session, cutoff, now=cutoff)
        enqueued_before = repository.queued_enqueued_before(session, cutoff)
        lapsed = repository.lapsed_running(session, now, now - LEGACY_REAP_AFTER)
    resumed: list[str] = []
    for run_id, attempts in lapsed:
        with database.transaction() as session:
            if resume_abandoned(session, run_id, attempts):
                resumed.append(run_id)
        if run_id in resumed:
            log.warning("run %s was abandoned by its worker (lease lapsed); resuming it", run_id)
        else:
            log.warning("reaper: run %s was abandoned by its worker too often; marked failed", run_id)
    done: list[str] = []
    try:
        connection = connect(redis_url)
        lost = [r for r in enqueued_before if not has_active_job(connection, r)]
    except redis.exceptions.RedisError as exc:
        log.warning("sweeper could not reach Redis (%s)", type(exc).__name__)
        return done
    for run_id in resumed + never_enqueued + lost:
        try:
            # A resumed run's old job may still look started (its worker died) or be scheduled
            # for a later retry: replace it, so the run resumes now.
            enqueue_run(run_id, redis_url, queue_name=queue_name, replace_stale=run_id in resumed)
        except redis.exceptions.RedisError as exc:
            log.warning("sweeper could not enqueue run %s (%s)", run_id, type(exc).__name__)
            break
        mark_enqueued(database, run_id)
        if run_id in lost:
            log.warning("sweeper: queued run %s had lost its job; enqueued it again", run_id)
        done.append(run_id)
    return done


def once_per(redis_url: str, name: str, period: timedelta) -> bool:
    """True for exactly one caller per ``period`` across every worker on every machine (a Redis
    key set only if absent, expiring with the period). Redis unreachable: False (the work waits
    for Redis; nothing it does can go without it)."""
    try:
        return bool(
            connect(redis_url).set(
                f"connect-polar:periodic:{name}", "1", nx=True, px=max(1, int(period.total_seconds() * 1000))
            )
        )
    except redis.exceptions.RedisError:
        return False


def enqueue_due_retries(redis_url: str, queue_name: str = QUEUE_NAME) -> int:
    """Retries whose time has come, moved to the queue when no live RQ scheduler holds the queue's
    scheduler lock (after a Redis restart a worker's scheduler is restarted only at its next
    maintenance, minutes later). Returns how many were due; 0 when a scheduler is alive."""
    connection = connect(redis_url)
    scheduler = RQScheduler([queue_name], connection=connection, serializer=JSONSerializer)
    if not scheduler.acquire_locks():
        return 0  # a live scheduler holds it and does this itself
    try:
        registry = ScheduledJobRegistry(queue_name, connection=connection, serializer=JSONSerializer)
        due = len(registry.get_jobs_to_schedule(int(time.time())))
        if due:
            scheduler.enqueue_scheduled_jobs()
            log.warning("sweeper: %d scheduled retry(ies) were due with no scheduler alive; enqueued", due)
        return due
    finally:
        scheduler.release_locks()
