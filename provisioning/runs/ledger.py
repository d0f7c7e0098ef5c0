"""The step ledger: each step's status, timing, error and the Polar ids it touched, committed as
the step ends so the owner's page shows progress live."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from provisioning.db import utcnow
from provisioning.errors import ConnectPolarError
from provisioning.observability import logs, metrics
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, StepStatus


class Stopped(ConnectPolarError):
    """The run was cancelled or its connection changed under it: stop quietly (not a failure)."""


@dataclass
class StepRecord:
    """What a step reports: the Polar ids it touched and, for work that ran in the background,
    when that work began and how long it took."""

    polar_ids: list[dict[str, Any]] = field(default_factory=list)
    background: tuple[datetime, float] | None = None


class Ledger:
    def __init__(
        self,
        session: Session,
        run: ProvisioningRun,
        *,
        guard: Callable[[bool], None],
        api_calls: Callable[[], dict[str, int]],
    ) -> None:
        self.session = session
        self.run = run
        self._guard = guard  # guard(lock) raises Stopped if the run may not go on
        self._api_calls = api_calls
        logs.bind(integration_id=run.integration_id)

    def record_calls(self) -> None:
        self.run.api_calls = self._api_calls()

    @contextmanager
    def step(self, name: str) -> Iterator[StepRecord]:
        self._guard(False)  # disconnected since the last step: stop before calling Polar again
        step = self._row(name)
        step.status = StepStatus.RUNNING
        step.started_at = utcnow()
        self.session.commit()
        started = time.monotonic()
        record = StepRecord()
        try:
            yield record
        except Stopped:
            raise
        except BaseException as exc:
            # The step's own writes are discarded, and a failed flush leaves the session unusable
            # until it is rolled back: roll back first, then record the failure in the ledger.
            self.session.rollback()
            if isinstance(exc, Exception):
                # A disconnect revokes the token, so the step's calls fail: not the step's failure.
                # With the row lock: a disconnect under way (it locks before revoking) is seen.
                self._guard(True)
            step.status = StepStatus.FAILED
            step.error = failure_message(exc)
            step.finished_at = utcnow()
            step.duration_ms = int((time.monotonic() - started) * 1000)
            metrics.STEP_SECONDS.labels(name, "failed").observe(step.duration_ms / 1000)
            self.record_calls()
            for later in self.run.steps:
                if later.position > step.position:
                    later.status = StepStatus.SKIPPED
            self.session.commit()
            raise
        step.status = StepStatus.SUCCEEDED
        step.polar_ids = record.polar_ids
        step.finished_at = utcnow()
        if record.background is not None:  # the work ran in the background: its own start and duration
            step.started_at, seconds = record.background
            step.duration_ms = int(seconds * 1000)
        else:
            step.duration_ms = int((time.monotonic() - started) * 1000)
        metrics.STEP_SECONDS.labels(name, "succeeded").observe(step.duration_ms / 1000)
        self.record_calls()
        self.session.commit()

    def _row(self, name: str) -> ProvisioningStep:
        for step in self.run.steps:
            if step.name == name:
                return step
        # A run created before this step existed: append it.
        step = ProvisioningStep(run_id=self.run.id, name=name, position=len(self.run.steps), polar_ids=[])
        self.run.steps.append(step)
        return step


def failure_message(exc: BaseException) -> str:
    """What the owner reads: the domain's own message, never an internal error's text."""
    if isinstance(exc, ConnectPolarError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); try again later, and contact support if it persists"
