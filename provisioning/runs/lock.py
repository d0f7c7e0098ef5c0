"""The per-integration provisioning lock: one saga at a time per workspace.

Finding Polar objects by metadata before creating them only prevents duplicates when runs of one
integration never overlap; this lock makes sure they don't.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from provisioning.polar.errors import TransientPolarError

log = logging.getLogger(__name__)
SAGA_LOCK_TTL = 15.0  # seconds, renewed every TTL/3 while the saga runs
SAGA_LOCK_WAIT = 20.0  # a little longer than the TTL: a dead worker's lock expires meanwhile


class IntegrationBusy(TransientPolarError):
    """Another run of the same integration holds its provisioning lock: RQ's Retry runs this later."""


def saga_lock_name(integration_id: str) -> str:
    return f"connect-polar:provision:{integration_id}"


@contextmanager
def saga_lock(
    conn: redis.Redis,
    integration_id: str,
    *,
    ttl: float | None = None,
    on_beat: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the integration's provisioning lock for the whole saga.

    The lock lives ``SAGA_LOCK_TTL`` seconds and a heartbeat thread renews it while the saga runs,
    so a worker killed mid-run (SIGKILL, OOM) frees it within seconds, not at the job's timeout.
    A job that finds it taken waits up to ``SAGA_LOCK_WAIT`` (a saga usually takes seconds, and
    this also outwaits a dead holder's lock), then raises ``IntegrationBusy``: transient, so RQ's
    Retry runs the job later instead of tying up the worker.

    ``ttl`` (default ``SAGA_LOCK_TTL``) is the run's lease (RUN_LEASE_SECONDS): the wait is a few
    seconds longer. ``on_beat`` runs at each heartbeat too: it renews the run's lease in the
    database, so the lock and the lease lapse together when the worker dies.
    """
    ttl = ttl or SAGA_LOCK_TTL
    lock = conn.lock(
        saga_lock_name(integration_id),
        timeout=ttl,
        blocking_timeout=max(SAGA_LOCK_WAIT, ttl + 5) if ttl > SAGA_LOCK_TTL else SAGA_LOCK_WAIT,
        thread_local=False,  # the heartbeat thread renews it
    )
    if not lock.acquire():
        raise IntegrationBusy(
            "another provisioning run of this workspace is under way; this one starts after it"
        )
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(ttl / 3):
            try:
                lock.reacquire()
            except Exception as exc:  # lost it (Redis down for longer than the TTL): say so
                log.warning(
                    "lost the provisioning lock of integration %s: %s", integration_id, type(exc).__name__
                )
                return  # the lease lapses too: the run is resumed elsewhere, this job is fenced off
            if on_beat is not None:
                try:
                    on_beat()
                except Exception as exc:  # the database is away: the lease may lapse, say so
                    log.warning("could not renew a run lease of integration %s: %s", integration_id, exc)

    keeper = threading.Thread(target=heartbeat, name="saga-lock", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
