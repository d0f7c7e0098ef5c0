"""RQ job entry points: ids in, their own database session, no Flask. Thin on purpose: the work
is in ``runs.execution`` and ``runs.saga``."""

from __future__ import annotations

import time
from typing import Any

from provisioning.config import Settings
from provisioning.db import get_database
from provisioning.observability import logs, metrics
from provisioning.runs.execution import RunExecution


def provision(run_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Run one provisioning run. Returns a small JSON-able summary (no secrets)."""
    settings = settings or Settings.from_env()
    logs.clear()
    logs.bind(run_id=run_id)  # on every line of the job (the ledger adds the integration's id)
    started = time.monotonic()
    outcome = "error"  # raised: RQ retries the job (the run is back to queued) or it failed for good
    session = get_database().session()
    try:
        summary = RunExecution(session, settings, run_id).execute()
        outcome = str(summary.get("status") or "unknown")
        return summary
    finally:
        session.close()
        metrics.RUNS.labels(outcome).inc()
        metrics.RUN_SECONDS.labels(outcome).observe(time.monotonic() - started)
        logs.clear()
