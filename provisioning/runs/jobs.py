"""RQ job entry points: ids in, their own database session, no Flask. Thin on purpose: the work
is in ``runs.execution`` and ``runs.saga``."""

from __future__ import annotations

from typing import Any

from provisioning.config import Settings
from provisioning.db import get_database
from provisioning.runs.execution import RunExecution


def provision(run_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Run one provisioning run. Returns a small JSON-able summary (no secrets)."""
    settings = settings or Settings.from_env()
    session = get_database().session()
    try:
        return RunExecution(session, settings, run_id).execute()
    finally:
        session.close()
