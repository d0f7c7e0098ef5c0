"""Background jobs other than provisioning runs: processing Polar's events, forwarding them to
tenants, ingesting usage. They run on the ``billing`` queue, which the worker takes before the
provisioning queue (a person waits on these; a run's pace is set by Polar's budget anyway).

Every such job drains rows the database already holds (the outbox): a job is only a nudge. So a
lost job, or Redis down when one was due, delays work until the worker's sweeper nudges again and
never loses it, and bursts coalesce into one job per kind and connection (:func:`nudge`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import redis
from rq import Queue, Retry, get_current_job
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
BILLING_QUEUE = "billing"
JOB_TIMEOUT = 300
# A nudge's mark lives this long: a job lost with its worker is nudged again after this at worst.
NUDGE_TTL_MS = 30_000
_PENDING = "connect_polar_pending_nudges"
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def connect(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)


def _client(redis_url: str) -> redis.Redis:
    """This process's client for nudges to ``redis_url``, made once: a web process nudges after
    every webhook delivery, and a client made per nudge opened a connection each time (redis-py
    also reads its own package metadata for each new connection). Its pool is thread-safe, and
    after a fork the child opens connections of its own."""
    client = _clients.get(redis_url)
    if client is None:
        with _clients_lock:
            client = _clients.get(redis_url)
            if client is None:
                client = _clients[redis_url] = connect(redis_url)
    return client


def get_queue(connection: redis.Redis, name: str = BILLING_QUEUE) -> Queue:
    """A queue of the platform's (JSON serializer: jobs carry ids, never objects)."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def _mark(key: str) -> str:
    return f"connect-polar:nudge:{key}"


def nudge(redis_url: str, function: str, key: str, *args: Any, queue_name: str = BILLING_QUEUE) -> bool:
    """Enqueue ``function(*args)`` unless a job for ``key`` is already waiting (its mark, set only
    if absent, says so); the job calls :func:`started` first, so work recorded after that is picked
    up by the next nudge. False when Redis is unreachable (the sweeper nudges later)."""
    try:
        connection = _client(redis_url)
        if not connection.set(_mark(key), "1", nx=True, px=NUDGE_TTL_MS):
            return True
        get_queue(connection, queue_name).enqueue(
            function,
            *args,
            job_timeout=JOB_TIMEOUT,
            result_ttl=300,
            failure_ttl=7 * 86400,
            retry=Retry(max=3, interval=[1, 5, 30]),
            description=f"{function.rsplit('.', 1)[-1]} {key}",
        )
        return True
    except redis.exceptions.RedisError as exc:
        log.warning("could not enqueue %s for %s (%s); the sweeper will", function, key, type(exc).__name__)
        return False


def started(redis_url: str, key: str) -> None:
    """Called by a nudged job before it reads its work: a nudge from now on enqueues a new job.
    The mark is cleared in the Redis the job came from (where it was set)."""
    job = get_current_job()
    with contextlib.suppress(redis.exceptions.RedisError):  # else the mark expires by itself
        (job.connection if job is not None else connect(redis_url)).delete(_mark(key))


def nudge_after_commit(
    session: Session, redis_url: str, function: str, key: str, *args: Any, queue_name: str = BILLING_QUEUE
) -> None:
    """:func:`nudge` once ``session`` commits; never if it rolls back."""
    pending: dict[str, tuple[Any, ...]] = session.info.setdefault(_PENDING, {})
    pending[key] = (redis_url, function, key, args, queue_name)
    if not event.contains(session, "after_commit", _on_commit):
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_soft_rollback", _on_rollback)


def _on_commit(session: Session) -> None:
    for redis_url, function, key, args, queue_name in session.info.pop(_PENDING, {}).values():
        nudge(redis_url, function, key, *args, queue_name=queue_name)


def _on_rollback(session: Session, previous_transaction: Any) -> None:
    if getattr(previous_transaction, "parent", None) is None:  # the outermost transaction
        session.info.pop(_PENDING, None)
