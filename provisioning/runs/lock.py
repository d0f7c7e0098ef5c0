"""The per-integration provisioning lock: one saga at a time per workspace.

Finding Polar objects by metadata before creating them only prevents duplicates when runs of one
integration never overlap; this lock makes sure they don't.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
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
def saga_lock(conn: redis.Redis, integration_id: str) -> Iterator[None]:
    """Hold the integration's provisioning lock for the whole saga.

    The lock lives ``SAGA_LOCK_TTL`` seconds and a heartbeat thread renews it while the saga runs,
    so a worker killed mid-run (SIGKILL, OOM) frees it within seconds, not at the job's timeout.
    A job that finds it taken waits up to ``SAGA_LOCK_WAIT`` (a saga usually takes seconds, and
    this also outwaits a dead holder's lock), then raises ``IntegrationBusy``: transient, so RQ's
    Retry runs the job later instead of tying up the worker.
    """
    lock = conn.lock(
        saga_lock_name(integration_id),
        timeout=SAGA_LOCK_TTL,
        blocking_timeout=SAGA_LOCK_WAIT,
        thread_local=False,  # the heartbeat thread renews it
    )
    if not lock.acquire():
        raise IntegrationBusy(
            "another provisioning run of this workspace is under way; this one starts after it"
        )
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(SAGA_LOCK_TTL / 3):
            try:
                lock.reacquire()
            except Exception as exc:  # lost it (Redis down for longer than the TTL): say so
                log.warning(
                    "lost the provisioning lock of integration %s: %s", integration_id, type(exc).__name__
                )
                return

    keeper = threading.Thread(target=heartbeat, name="saga-lock", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
