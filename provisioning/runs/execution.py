"""Running one provisioning run: claim it, hold its integration's lock, run the saga's steps,
record the outcome.

One run at a time per integration, each run at most once: the job claims its run atomically
(queued → running; a duplicate job for a run already running or over does nothing) and holds a
per-integration Redis lock for the whole saga. If another run of the integration holds it, the job
waits a bounded time for it, then raises ``IntegrationBusy`` (transient) without touching its run,
and RQ's Retry runs it later; should the retries run out, the run is still queued and the outbox
sweeper enqueues it again.

A disconnect cancels the run: before each step the job checks that the run is still running and
its integration still connected (tokens present, status provisioning, the token it started with);
writes to the integration happen under a row lock taken by that check, and the final write turns
only provisioning into ready. Otherwise the job stops quietly, leaving the integration alone. So
does a connection to a Polar environment the deployment no longer serves: its token is never sent
to another environment.

Failures: a ``ProvisioningError`` fails the run with its message (returned, not raised: retrying
cannot fix it, and RQ's Retry would retry anything raised); a ``TransientPolarError`` or an
unexpected exception puts the run back to queued and is raised so RQ's Retry runs the job again,
and fails the run only when no retry is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import redis
from rq import get_current_job
from sqlalchemy.orm import Session

from provisioning.catalog import Catalog, CatalogError, load_catalog
from provisioning.catalog import repository as catalogs
from provisioning.config import EnvironmentNotServed, Settings
from provisioning.db import get_database, utcnow
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.tokens import fresh_access_token, reauthorize
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import PolarBusy, ProvisioningError, TransientPolarError
from provisioning.ratelimit import lanes
from provisioning.ratelimit import registry as ratelimit
from provisioning.runs import repository
from provisioning.runs.lease import resume_abandoned
from provisioning.runs.ledger import Ledger, Stopped, failure_message
from provisioning.runs.lock import saga_lock
from provisioning.runs.models import ProvisioningRun, RunStatus, StepStatus
from provisioning.runs.queue import enqueue_deferred
from provisioning.runs.saga import STEPS, Saga

log = logging.getLogger(__name__)
MAX_PARALLEL_CALLS = 8

# Integration statuses a claimed run may start from (it sets ``provisioning``); from any other
# (not_connected, connecting, awaiting_organization) the run is cancelled without a Polar call.
STARTABLE = (
    IntegrationStatus.PROVISIONING,
    IntegrationStatus.READY,
    IntegrationStatus.FAILED,
    IntegrationStatus.NEEDS_RECONNECT,
)


# Called in the transaction that records a run's success, its rows locked: how a package that
# itself starts runs (drift, which the run has just restored) hears of it without a dependency loop.
SuccessHook = Callable[[Session, Settings, ProvisioningRun, PolarIntegration], None]
_SUCCESS_HOOKS: list[SuccessHook] = []


def on_success(hook: SuccessHook) -> None:
    if hook not in _SUCCESS_HOOKS:
        _SUCCESS_HOOKS.append(hook)


class Superseded(Stopped):
    """This job's lease lapsed and another job resumed its run: stop, and leave the run alone."""


class RunExecution:
    def __init__(self, session: Session, settings: Settings, run_id: str) -> None:
        self.session = session
        self.settings = settings
        self.run_id = run_id
        self.api: PolarApi | None = None
        self.attempt: int | None = None  # the run's attempt this job claimed: its fence
        self.grant_id: str | None = None  # the grant this run works with (kept by refreshes)

    def execute(self) -> dict[str, Any]:
        run = repository.get(self.session, self.run_id)
        if run is None:
            # Deleted with its workspace, or a job from another database: nothing to retry.
            log.warning("provisioning run %s does not exist; dropping its job", self.run_id)
            return {"run_id": self.run_id, "status": "missing"}
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            # A duplicate job (a second enqueue, a retry of a job whose run is over): never run it twice.
            log.info("provisioning run %s is %s; dropping this job", run.id, run.status)
            summary = {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}
            self.session.rollback()
            return summary
        integration_id = run.integration_id
        self.session.rollback()  # no transaction open while we wait for anything

        # One saga per integration at a time: find-before-create only works serially. The lock
        # lives as long as the run's lease and is renewed with it.
        with saga_lock(
            self._redis(), integration_id, ttl=self.lease.total_seconds(), on_beat=self._renew_lease
        ):
            if not self._take_over_if_abandoned():
                status = repository.status(self.session, self.run_id) or "missing"
                self.session.rollback()
                log.info(
                    "provisioning run %s is %s under another job; dropping this one", self.run_id, status
                )
                return {"run_id": self.run_id, "status": status}
            return self._execute_locked()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.run_lease_seconds)

    def _renew_lease(self) -> None:
        if self.attempt is None:
            return
        with get_database().transaction() as tx:
            repository.renew_lease(tx, self.run_id, self.attempt, self.lease)

    def _take_over_if_abandoned(self) -> bool:
        """With the saga lock held: a run still ``running`` is abandoned (whoever ran it held this
        lock and renewed it with the run's lease; RQ's retry of a job whose work-horse died lands
        here). Wait out what is left of its lease (at most one lease), then put it back to queued
        for the claim that follows. False: the run is running under a live lease (its worker lost
        the lock but still renews the lease), or over."""
        state = repository.lease_of(self.session, self.run_id)
        self.session.rollback()
        if state is None or state[0] == RunStatus.QUEUED:
            return True
        status, lease_expires_at, attempts = state
        if status != RunStatus.RUNNING:
            return False
        if lease_expires_at is not None:
            left = (lease_expires_at - utcnow()).total_seconds()
            if left > self.lease.total_seconds():
                return False
            if left > 0:
                time.sleep(left + 0.05)
        resumed = resume_abandoned(self.session, self.run_id, attempts)
        self.session.commit()
        if resumed:
            log.warning("provisioning run %s was abandoned by its worker; resuming it", self.run_id)
        return resumed

    def _execute_locked(self) -> dict[str, Any]:
        attempt = repository.claim(self.session, self.run_id, self.lease)
        claimed = attempt is not None
        self.attempt = attempt
        self.session.commit()
        self.session.expire_all()
        if not claimed:
            status = repository.status(self.session, self.run_id) or "missing"
            self.session.rollback()
            log.info(
                "provisioning run %s was claimed by another job (%s); dropping this one", self.run_id, status
            )
            return {"run_id": self.run_id, "status": status}
        run = repository.get(self.session, self.run_id)
        assert run is not None
        integration = integrations.get(self.session, run.integration_id)
        assert integration is not None
        self.run, self.integration = run, integration
        # A run is background work: it draws on the shared rate budget's background lane, fairly
        # with other workspaces', and is deferred rather than held when the budget is used up.
        ratelimit.install(self.settings)
        with lanes.lane(lanes.background(integration.workspace_id)) as caller:
            return self._execute_saga(caller)

    def _execute_saga(self, caller: lanes.Caller) -> dict[str, Any]:
        run, integration = self.run, self.integration
        try:
            # Before anything changes: a connection to an environment no longer served is left alone.
            endpoints = self.settings.polar(integration.environment)
            self._start()
            catalog = self._catalog()
            token = fresh_access_token(self.session, self.settings, integration, redis_conn=self._redis())
            self.grant_id = integration.grant_id
            run.catalog_revision = catalog.revision
            integration_id = integration.id
            self.api = PolarApi(
                endpoints.api_url,
                token,
                reauthorize=lambda rejected: reauthorize(
                    self.settings, integration_id, rejected, redis_conn=self._redis()
                ),
            )
            ledger = Ledger(
                self.session,
                run,
                guard=lambda lock: self._check_connected(lock=lock),
                api_calls=lambda: self._api().counts,
            )
            with ThreadPoolExecutor(
                MAX_PARALLEL_CALLS, thread_name_prefix="polar", initializer=lanes.adopt, initargs=(caller,)
            ) as executor:
                saga = Saga(
                    session=self.session,
                    settings=self.settings,
                    integration=integration,
                    api=self.api,
                    catalog=catalog,
                    executor=executor,
                    guard=lambda: self._check_connected(lock=True),
                )
                saga.start()
                for name, step in STEPS:
                    with ledger.step(name) as record:
                        step(saga, record)
            self._succeed(catalog)
        except Superseded as exc:
            self.session.rollback()
            log.warning("provisioning run %s: this job stops, %s", self.run_id, exc)
            return {"run_id": self.run_id, "status": "superseded"}
        except (Stopped, EnvironmentNotServed) as exc:
            self._stop(str(exc))
        except PolarBusy as exc:
            return self._defer(exc)
        except (ProvisioningError, CatalogError) as exc:
            if isinstance(exc, TransientPolarError) and _retries_left():
                self._mark_retrying(exc)
                raise
            self._fail(exc)
            if isinstance(exc, TransientPolarError):
                raise  # no retry left: the job fails too, with its traceback
        except Exception as exc:
            # A bug or an outage we did not foresee: retry while RQ has retries, then fail loudly.
            if _retries_left():
                self._mark_retrying(exc)
            else:
                self._fail(exc)
            raise
        return self._summary()

    def _api(self) -> PolarApi:
        assert self.api is not None
        return self.api

    def _catalog(self) -> Catalog:
        """The running catalog, or the revision the run was pinned to ("Go live")."""
        current = load_catalog(self.settings.plans_file)
        catalogs.remember(self.session, current)
        pinned = self.run.catalog_revision
        if not pinned or pinned == current.revision:
            return current
        stored = catalogs.load_revision(self.session, pinned)
        if stored is None:
            raise CatalogError(
                f"plan catalog revision {pinned} is not stored on this platform; provision the running "
                f"catalog ({current.revision}) instead"
            )
        return stored

    def _summary(self) -> dict[str, Any]:
        run = self.run
        out = {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}
        if run.error:
            out["error"] = run.error
        return out

    def _start(self) -> None:
        """Check the integration can be provisioned and mark it so (integration row first, then
        the run's, like disconnect)."""
        self._check_connected(lock=True, statuses=STARTABLE, same_token=False)
        self.integration.status = IntegrationStatus.PROVISIONING
        self.session.commit()

    def _check_connected(
        self,
        *,
        lock: bool = False,
        statuses: tuple[IntegrationStatus, ...] = (IntegrationStatus.PROVISIONING,),
        same_token: bool = True,
    ) -> None:
        """Raise ``Stopped`` unless the run is still running and its integration still connected
        (tokens present, an expected status, the token this run works with). With ``lock``, the
        integration's and then the run's rows stay locked until the next commit, so a disconnect
        can't slip in between this check and the writes that follow it."""
        row = integrations.connection_state(self.session, self.integration.id, lock=lock)
        state = repository.run_state(self.session, self.run_id, lock=lock)
        if row is None or state is None:
            raise Stopped("Cancelled: the workspace's Polar integration was deleted")
        run_status, attempt = state
        if run_status == RunStatus.RUNNING and self.attempt is not None and attempt != self.attempt:
            # This job's lease lapsed and another job resumed the run: leave it to that one.
            raise Superseded(f"resumed by another job (attempt {attempt}) while this one was stalled")
        if run_status != RunStatus.RUNNING:
            raise Stopped(f"Cancelled: the run was {run_status} while under way")
        if not row.access_token:
            raise Stopped("Cancelled: Polar was disconnected from this workspace")
        if row.status not in statuses:
            raise Stopped(f"Cancelled: the Polar connection changed ({row.status})")
        if same_token and self.api is not None and row.grant_id != self.grant_id:
            raise Stopped("Cancelled: the Polar connection was replaced while this run was under way")

    # -- outcomes ------------------------------------------------------------------------------

    def _record_calls(self) -> None:
        if self.api is not None:
            self.run.api_calls = self.api.counts

    def _succeed(self, catalog: Catalog) -> None:
        """running → succeeded and provisioning → ready, only if both still hold (rows locked)."""
        self._check_connected(lock=True)
        run, integration = self.run, self.integration
        run.status = RunStatus.SUCCEEDED
        run.finished_at = utcnow()
        self._record_calls()
        integration.status = IntegrationStatus.READY
        integration.provisioned_at = run.finished_at
        integration.catalog_revision = catalog.revision
        integration.last_error = None
        for hook in _SUCCESS_HOOKS:
            hook(self.session, self.settings, run, integration)
        self.session.commit()
        log.info("provisioning run %s succeeded: %s", run.id, run.api_calls)

    def _outcome_guard(self) -> bool:
        """Before recording a failure or a retry: lock the rows, and stop quietly instead if the
        run was cancelled or the integration disconnected or replaced meanwhile (a disconnect
        revokes the token, so the run's calls fail: that is not the run's failure to report)."""
        self.session.rollback()
        try:
            self._check_connected(
                lock=True,
                statuses=(
                    IntegrationStatus.PROVISIONING,
                    IntegrationStatus.NEEDS_RECONNECT,  # set by the token refresh just now
                ),
            )
        except Superseded:
            self.session.rollback()
            return False
        except Stopped as stopped:
            self._stop(str(stopped))
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        if not self._outcome_guard():
            return
        run, integration = self.run, self.integration
        message = failure_message(exc)
        run.status = RunStatus.FAILED
        run.error = message
        run.finished_at = utcnow()
        self._record_calls()
        for step in run.steps:
            if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
                step.status = StepStatus.SKIPPED
        if getattr(exc, "needs_reconnect", False):
            integration.status = IntegrationStatus.NEEDS_RECONNECT
        elif integration.status != IntegrationStatus.NEEDS_RECONNECT:
            integration.status = IntegrationStatus.FAILED
        integration.last_error = message
        self.session.commit()
        if isinstance(exc, ProvisioningError | CatalogError):
            log.warning("provisioning run %s failed: %s", run.id, message)
        else:
            log.error("provisioning run %s failed: %s", run.id, message, exc_info=exc)

    def _mark_retrying(self, exc: BaseException) -> None:
        if not self._outcome_guard():
            return
        run = self.run
        run.status = RunStatus.QUEUED  # RQ's Retry claims it again
        run.error = f"{failure_message(exc)} (retrying)"
        self._record_calls()
        self.integration.last_error = run.error
        self.session.commit()
        log.info("provisioning run %s will be retried: %s", run.id, run.error)

    def _defer(self, exc: PolarBusy) -> dict[str, Any]:
        """Polar's rate budget is used up for longer than a worker should wait: hand the run back,
        to be enqueued by the sweeper when the budget frees up (its steps find what exists). Not a
        retry: RQ's retries are kept for failures."""
        if not self._outcome_guard():
            return {"run_id": self.run_id, "status": "cancelled"}
        assert self.attempt is not None
        until = utcnow() + timedelta(seconds=exc.retry_after)
        message = f"Waiting for Polar's rate limit; continues in about {max(1, round(exc.retry_after))}s"
        self._record_calls()
        deferred = repository.defer(self.session, self.run_id, self.attempt, until, message)
        self.session.commit()
        if deferred:
            try:
                enqueue_deferred(self.run_id, self.settings.redis_url, until)
            except redis.exceptions.RedisError as error:
                log.warning(
                    "could not schedule deferred run %s (%s); the sweeper will",
                    self.run_id,
                    type(error).__name__,
                )
            log.info("provisioning run %s deferred for %.1fs: %s", self.run_id, exc.retry_after, exc)
        return {"run_id": self.run_id, "status": "deferred" if deferred else "superseded"}

    def _stop(self, reason: str) -> None:
        """The integration was disconnected or changed: cancel the run, leave the integration be."""
        self.session.rollback()
        repository.cancel_if_running(self.session, self.run_id, reason, attempt=self.attempt)
        self.session.commit()
        self.session.expire_all()
        log.info("provisioning run %s stopped: %s", self.run_id, reason)

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2)


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job is not None and (job.retries_left or 0) > 0)
