"""A running run's lease: what happens to a run whose worker stopped vouching for it.

The job that claims a run holds its lease (``lease_expires_at``), renewed every third of
RUN_LEASE_SECONDS by the same heartbeat that renews the integration's saga lock. When a worker or
the job process running the run is killed, both lapse within a lease; the run is then put back to queued and its
next job resumes it (RQ's retry of the abandoned job, or the sweeper's new one), its idempotent
steps finding what the killed attempt created. A run abandoned ``MAX_ATTEMPTS`` times is not
resumed again: it fails with a message a person can act on (the reaper).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from provisioning.db import utcnow
from provisioning.integrations import repository as integrations
from provisioning.runs import repository

# Claims of one run (RQ's retries of errors included) after which an abandoned run is failed.
MAX_ATTEMPTS = 5
# A run from before leases (no lease_expires_at) counts as abandoned this long after it started.
LEGACY_REAP_AFTER = timedelta(minutes=15)
RESUMING = "The worker setting up billing stopped unexpectedly; resuming where it was"
EXHAUSTED = (
    "Setting up billing was interrupted {n} times in a row (the worker running it stopped each "
    "time), so it was not resumed again. Click Reconnect Polar to try again; if it happens again, "
    "contact support (run {run_id})"
)


def resume_abandoned(session: Session, run_id: str, attempts: int) -> bool:
    """A running run whose lease lapsed: back to queued (True), or failed with its integration if
    it has had ``MAX_ATTEMPTS`` attempts (False). Flushes; the caller commits. False too if the run
    finished, or was resumed, meanwhile."""
    now = utcnow()
    legacy = now - LEGACY_REAP_AFTER
    if attempts < MAX_ATTEMPTS:
        return repository.requeue_lapsed(session, run_id, now, legacy, RESUMING)
    message = EXHAUSTED.format(n=attempts, run_id=run_id)
    integration_id = repository.fail_lapsed(session, run_id, now, legacy, message)
    if integration_id is not None:
        integrations.fail_if_provisioning(session, integration_id, message)
    return False
