"""The worker's periodic work on runs: the outbox sweeper and the reaper.

- queued runs that never reached Redis (``enqueued_at`` unset) are enqueued;
- queued runs whose job is gone or no longer active (a retry lost with its worker, a job that gave
  up waiting for the integration's lock) are enqueued again;
- runs ``running`` for longer than ``reap_after`` with no active job are failed, with a message that
  says what to do, and so is their integration.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis

from provisioning.db import Database, utcnow
from provisioning.integrations import repository as integrations
from provisioning.runs import repository
from provisioning.runs.queue import (
    JOB_TIMEOUT,
    QUEUE_NAME,
    connect,
    enqueue_run,
    has_active_job,
    mark_enqueued,
)

log = logging.getLogger(__name__)
SWEEP_MIN_AGE = timedelta(seconds=5)
# A run still ``running`` this long after it started has outlived its job's timeout: if no worker
# is running its job, the worker died (SIGKILL, OOM) and the reaper fails the run.
REAP_AFTER = timedelta(seconds=JOB_TIMEOUT) + timedelta(minutes=5)
INTERRUPTED = (
    "Setting up billing was interrupted (the worker running it stopped unexpectedly). "
    "Click Reconnect Polar to try again; if it happens again, contact support"
)


def enqueue_pending(
    database: Database,
    redis_url: str,
    *,
    min_age: timedelta = SWEEP_MIN_AGE,
    queue_name: str = QUEUE_NAME,
    reap_after: timedelta = REAP_AFTER,
) -> list[str]:
    """The outbox sweeper and reaper. Returns the ids of the runs it (re-)enqueued."""
    now = utcnow()
    cutoff = now - min_age
    with database.transaction() as session:
        never_enqueued = repository.queued_never_enqueued(session, cutoff)
        enqueued_before = repository.queued_enqueued_before(session, cutoff)
        stale_running = repository.running_started_before(session, now - reap_after)
    done: list[str] = []
    try:
        connection = connect(redis_url)
        lost = [r for r in enqueued_before if not has_active_job(connection, r)]
        dead = [r for r in stale_running if not has_active_job(connection, r)]
    except redis.exceptions.RedisError as exc:
        log.warning("sweeper could not reach Redis (%s)", type(exc).__name__)
        return done
    for run_id in dead:
        if reap_run(database, run_id, now - reap_after):
            log.warning("reaper: run %s was running with no live job; marked failed", run_id)
    for run_id in never_enqueued + lost:
        try:
            enqueue_run(run_id, redis_url, queue_name=queue_name)
        except redis.exceptions.RedisError as exc:
            log.warning("sweeper could not enqueue run %s (%s)", run_id, type(exc).__name__)
            break
        mark_enqueued(database, run_id)
        if run_id in lost:
            log.warning("sweeper: queued run %s had lost its job; enqueued it again", run_id)
        done.append(run_id)
    return done


def reap_run(database: Database, run_id: str, started_before: datetime) -> bool:
    """Fail a run its worker abandoned, and its integration if it is still being set up."""
    with database.transaction() as session:
        integration_id = repository.fail_abandoned(session, run_id, started_before, INTERRUPTED)
        if integration_id is None:
            return False
        integrations.fail_if_provisioning(session, integration_id, INTERRUPTED)
    return True
