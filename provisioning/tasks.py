"""RQ job entry points. Ids in, their own database session, no Flask.

``provision(run_id)`` runs the saga resolve organization → ensure meters → ensure benefits →
ensure products → ensure webhook endpoint → save mappings, committing the step ledger after each
step so the owner's page shows progress live. Independent Polar calls overlap: the four list calls
start together, the webhook endpoint is ensured in the background while meters, benefits and
products are, and the creates within a step run concurrently.

One run at a time per integration, each run at most once: the job claims its run atomically
(queued → running; a duplicate job for a run already running or over does nothing) and holds a
per-integration Redis lock for the whole saga. If another run of the integration holds it, the job
waits a bounded time for it (``SAGA_LOCK_WAIT``: sagas take seconds, and the lock of a killed
worker expires within ``SAGA_LOCK_TTL``), then raises ``IntegrationBusy`` (transient) without
touching its run, and RQ's Retry runs it later; should the retries run out, the run is still
queued and the outbox sweeper enqueues it again.

A disconnect cancels the run: before each step the job checks that the run is still running and
its integration still connected (tokens present, status provisioning, the token it started with);
writes to the integration happen under a row lock taken by that check, and the final write turns
only provisioning into ready. Otherwise the job stops quietly, leaving the integration alone.

Failures: a ``ProvisioningError`` fails the run with its message (returned, not raised: retrying
cannot fix it, and RQ's Retry would retry anything raised); a ``TransientPolarError`` or an
unexpected exception puts the run back to queued and is raised so RQ's Retry runs the job again,
and fails the run only when no retry is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from provisioning.catalog import CatalogError, load_catalog
from provisioning.config import Settings
from provisioning.db import get_database, utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration, PolarProductMapping
from provisioning.integrations.service import vault_for, workspace_name
from provisioning.integrations.tokens import fresh_access_token
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import ProvisioningError, TransientPolarError
from provisioning.reconcile import benefits, meters, products, webhook
from provisioning.reconcile.context import RunContext
from provisioning.reconcile.organization import create_for_workspace
from provisioning.runs.lock import saga_lock
from provisioning.runs.models import ProvisioningRun, ProvisioningStep, RunStatus, StepStatus

log = logging.getLogger(__name__)
MAX_PARALLEL_CALLS = 8


def webhook_url(settings: Settings, integration: PolarIntegration) -> str:
    return f"{settings.public_base_url}/polar/webhooks/{integration.webhook_path_token}"


def provision(run_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """The RQ job. Returns a small JSON-able summary (no secrets)."""
    settings = settings or Settings.from_env()
    session = get_database().session()
    try:
        return _Provisioner(session, settings, run_id).run()
    finally:
        session.close()


class _Stopped(Exception):
    """The integration was disconnected or its connection changed under the run: stop quietly."""


# Integration statuses a claimed run may start from (it sets ``provisioning``); from any other
# (not_connected, connecting, awaiting_organization) the run is cancelled without a Polar call.
STARTABLE = (
    IntegrationStatus.PROVISIONING.value,
    IntegrationStatus.READY.value,
    IntegrationStatus.FAILED.value,
    IntegrationStatus.NEEDS_RECONNECT.value,
)


class _Provisioner:
    def __init__(self, session: Session, settings: Settings, run_id: str) -> None:
        self.session = session
        self.settings = settings
        self.run_id = run_id
        self.api: PolarApi | None = None
        self.token_ciphertext: str | None = None  # the access token this run works with

    # -- the saga ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        run = self.session.get(ProvisioningRun, self.run_id)
        if run is None:
            # Deleted with its workspace, or a job from another database: nothing to retry.
            log.warning("provisioning run %s does not exist; dropping its job", self.run_id)
            return {"run_id": self.run_id, "status": "missing"}
        if run.status != RunStatus.QUEUED.value:
            # A duplicate job (a second enqueue, a retry RQ made after a crash): the run is someone
            # else's, or over. Never run it twice.
            log.info("provisioning run %s is %s; dropping this job", run.id, run.status)
            summary = {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}
            self.session.rollback()
            return summary
        integration_id = run.integration_id
        self.session.rollback()  # no transaction open while we wait for anything

        # One saga per integration at a time: find-before-create only works serially.
        with saga_lock(self._redis(), integration_id):
            return self._run_locked()

    def _run_locked(self) -> dict[str, Any]:
        if not self._claim():
            run = self.session.get(ProvisioningRun, self.run_id)
            status = run.status if run is not None else "missing"
            self.session.rollback()
            log.info(
                "provisioning run %s was claimed by another job (%s); dropping this one", self.run_id, status
            )
            return {"run_id": self.run_id, "status": status}
        run = self.session.get(ProvisioningRun, self.run_id)
        assert run is not None
        integration = self.session.get(PolarIntegration, run.integration_id)
        assert integration is not None
        self.run_obj, self.integration = run, integration

        try:
            self._start()
            catalog = load_catalog(self.settings.plans_file)
            token = fresh_access_token(self.session, self.settings, integration, redis_conn=self._redis())
            self.token_ciphertext = integration.access_token
            run.catalog_revision = catalog.revision
            self.api = PolarApi(self.settings.polar_api_url, token)
            with ThreadPoolExecutor(MAX_PARALLEL_CALLS, thread_name_prefix="polar") as executor:
                self._saga(catalog, executor)
            self._succeed(catalog)
        except _Stopped as exc:
            self._stop(str(exc))
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

    def _summary(self) -> dict[str, Any]:
        run = self.run_obj
        out = {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}
        if run.error:
            out["error"] = run.error
        return out

    def _claim(self) -> bool:
        """queued → running, atomically: of two jobs for one run, only one gets it."""
        claimed = self.session.execute(
            update(ProvisioningRun)
            .where(ProvisioningRun.id == self.run_id, ProvisioningRun.status == RunStatus.QUEUED.value)
            .values(
                status=RunStatus.RUNNING.value,
                started_at=utcnow(),
                finished_at=None,
                error=None,
                attempts=func.coalesce(ProvisioningRun.attempts, 0) + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed:
            self.session.execute(
                update(ProvisioningStep)
                .where(ProvisioningStep.run_id == self.run_id)
                .values(status=StepStatus.PENDING.value, error=None, duration_ms=None)
                .execution_options(synchronize_session=False)
            )
        self.session.commit()
        self.session.expire_all()
        return bool(claimed)

    def _start(self) -> None:
        """Check the integration can be provisioned and mark it so (integration row first, then
        the run's, like disconnect)."""
        self._check_connected(lock=True, statuses=STARTABLE, same_token=False)
        self.integration.status = IntegrationStatus.PROVISIONING.value
        self.session.commit()

    def _check_connected(
        self,
        *,
        lock: bool = False,
        statuses: tuple[str, ...] = (IntegrationStatus.PROVISIONING.value,),
        same_token: bool = True,
    ) -> None:
        """Raise ``_Stopped`` unless the run is still running and its integration still connected
        (tokens present, an expected status, the token this run works with). With ``lock``, the
        integration's and then the run's rows stay locked until the next commit, so a disconnect
        can't slip in between this check and the writes that follow it."""
        query = select(PolarIntegration.status, PolarIntegration.access_token).where(
            PolarIntegration.id == self.integration.id
        )
        row = self.session.execute(query.with_for_update() if lock else query).one_or_none()
        run_query = select(ProvisioningRun.status).where(ProvisioningRun.id == self.run_id)
        run_status = self.session.execute(run_query.with_for_update() if lock else run_query).scalar()
        if row is None or run_status is None:
            raise _Stopped("Cancelled: the workspace's Polar integration was deleted")
        if run_status != RunStatus.RUNNING.value:
            raise _Stopped(f"Cancelled: the run was {run_status} while under way")
        if not row.access_token:
            raise _Stopped("Cancelled: Polar was disconnected from this workspace")
        if row.status not in statuses:
            raise _Stopped(f"Cancelled: the Polar connection changed ({row.status})")
        if same_token and self.token_ciphertext and row.access_token != self.token_ciphertext:
            raise _Stopped("Cancelled: the Polar connection was replaced while this run was under way")

    def _saga(self, catalog: Any, executor: ThreadPoolExecutor) -> None:
        api, integration = self.api, self.integration
        assert api is not None

        with self._step("resolve_organization") as ids:
            if integration.polar_org_id:
                ids.append({"kind": "organization", "id": integration.polar_org_id, "action": "found"})
            elif len(integration.reachable_organizations or []) > 1:
                raise ProvisioningError("Choose which Polar organization to use on the billing page")
            else:
                org = create_for_workspace(
                    api, workspace_name(self.session, integration.workspace_id), integration.workspace_id
                )
                self._check_connected(lock=True)
                integration.polar_org_id, integration.polar_org_name, integration.polar_org_slug = (
                    org.id,
                    org.name,
                    org.slug,
                )
                ids.append(
                    {"kind": "organization", "id": org.id, "action": "created" if org.created else "found"}
                )

        assert integration.polar_org_id
        ctx = RunContext(
            api=api,
            catalog=catalog,
            workspace_id=integration.workspace_id,
            organization_id=integration.polar_org_id,
            webhook_url=webhook_url(self.settings, integration),
            executor=executor,
        )
        # Every list call at once; the webhook endpoint needs nothing else, so it runs to the end.
        meters_list = executor.submit(meters.fetch, ctx)
        benefits_list = executor.submit(benefits.fetch, ctx)
        products_list = executor.submit(products.fetch, ctx)
        webhook_job = executor.submit(_timed, lambda: webhook.ensure(ctx))

        with self._step("ensure_meters") as ids:
            meter_result = meters.ensure(ctx, actual=meters_list.result())
            ids += meter_result.polar_ids
        with self._step("ensure_benefits") as ids:
            benefit_result = benefits.ensure(ctx, meter_result.ids, actual=benefits_list.result())
            ids += benefit_result.polar_ids
        with self._step("ensure_products") as ids:
            product_result = products.ensure(
                ctx, meter_result.ids, benefit_result.ids, actual=products_list.result()
            )
            ids += product_result.polar_ids
        with self._step("ensure_webhook_endpoint", background=webhook_job) as ids:
            hook, _, _ = webhook_job.result()
            self._store_webhook(hook)
            ids += hook.polar_ids
        with self._step("save_mappings") as ids:
            ids += self._save_mappings(product_result.ids)

    # -- step ledger ---------------------------------------------------------------------------

    @contextmanager
    def _step(self, name: str, background: Future[Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        self._check_connected()  # disconnected since the last step: stop before calling Polar again
        step = self._step_row(name)
        step.status = StepStatus.RUNNING.value
        step.started_at = utcnow()
        self.session.commit()
        started = time.monotonic()
        polar_ids: list[dict[str, Any]] = []
        try:
            yield polar_ids
        except _Stopped:
            raise
        except BaseException as exc:
            # The step's own writes are discarded, and a failed flush leaves the session unusable
            # until it is rolled back: roll back first, then record the failure in the ledger.
            self.session.rollback()
            if isinstance(exc, Exception):
                # A disconnect revokes the token, so the step's calls fail: not the step's failure.
                self._check_connected()
            step.status = StepStatus.FAILED.value
            step.error = _message(exc)
            step.finished_at = utcnow()
            step.duration_ms = int((time.monotonic() - started) * 1000)
            self._record_calls()
            for later in self.run_obj.steps:
                if later.position > step.position:
                    later.status = StepStatus.SKIPPED.value
            self.session.commit()
            raise
        step.status = StepStatus.SUCCEEDED.value
        step.polar_ids = polar_ids
        step.finished_at = utcnow()
        if background is not None:
            # The work ran in the background: report its own start and duration.
            _, began, took = background.result()
            step.started_at, step.duration_ms = began, int(took * 1000)
        else:
            step.duration_ms = int((time.monotonic() - started) * 1000)
        self._record_calls()
        self.session.commit()

    def _step_row(self, name: str) -> ProvisioningStep:
        for step in self.run_obj.steps:
            if step.name == name:
                return step
        step = ProvisioningStep(
            run_id=self.run_obj.id, name=name, position=len(self.run_obj.steps), polar_ids=[]
        )
        self.run_obj.steps.append(step)
        return step

    def _record_calls(self) -> None:
        if self.api is not None:
            self.run_obj.api_calls = self.api.counts

    # -- outcomes ------------------------------------------------------------------------------

    def _store_webhook(self, hook: webhook.WebhookResult) -> None:
        self._check_connected(lock=True)  # never write a secret back over a disconnect
        integration = self.integration
        vault = vault_for(self.settings)
        integration.webhook_endpoint_id = hook.endpoint_id
        current = vault.decrypt(integration.webhook_secret) if integration.webhook_secret else None
        if current != hook.secret:
            integration.webhook_secret = vault.encrypt(hook.secret)

    def _save_mappings(self, product_ids: dict[str, str]) -> list[dict[str, Any]]:
        self._check_connected(lock=True)
        existing = {
            m.plan_id: m
            for m in self.session.scalars(
                select(PolarProductMapping).where(PolarProductMapping.integration_id == self.integration.id)
            )
        }
        out = []
        for plan_id, product_id in product_ids.items():
            mapping = existing.pop(plan_id, None)
            if mapping is None:
                self.session.add(
                    PolarProductMapping(
                        integration_id=self.integration.id, plan_id=plan_id, polar_product_id=product_id
                    )
                )
                out.append({"kind": "product_mapping", "id": product_id, "action": "created"})
            elif mapping.polar_product_id != product_id:
                mapping.polar_product_id = product_id
                out.append({"kind": "product_mapping", "id": product_id, "action": "updated"})
        for stale in existing.values():
            self.session.delete(stale)
            out.append({"kind": "product_mapping", "id": stale.polar_product_id, "action": "removed"})
        self.session.flush()
        self.session.expire(self.integration, ["product_mappings"])
        return out

    def _succeed(self, catalog: Any) -> None:
        """running → succeeded and provisioning → ready, only if both still hold (rows locked)."""
        assert self.api is not None
        self._check_connected(lock=True)
        run, integration = self.run_obj, self.integration
        run.status = RunStatus.SUCCEEDED.value
        run.finished_at = utcnow()
        run.api_calls = self.api.counts
        integration.status = IntegrationStatus.READY.value
        integration.provisioned_at = run.finished_at
        integration.catalog_revision = catalog.revision
        integration.last_error = None
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
                    IntegrationStatus.PROVISIONING.value,
                    IntegrationStatus.NEEDS_RECONNECT.value,  # set by the token refresh just now
                ),
            )
        except _Stopped as stopped:
            self._stop(str(stopped))
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        if not self._outcome_guard():
            return
        run, integration = self.run_obj, self.integration
        message = _message(exc)
        run.status = RunStatus.FAILED.value
        run.error = message
        run.finished_at = utcnow()
        self._record_calls()
        for step in run.steps:
            if step.status in (StepStatus.PENDING.value, StepStatus.RUNNING.value):
                step.status = StepStatus.SKIPPED.value
        if getattr(exc, "needs_reconnect", False):
            integration.status = IntegrationStatus.NEEDS_RECONNECT.value
        elif integration.status != IntegrationStatus.NEEDS_RECONNECT.value:
            integration.status = IntegrationStatus.FAILED.value
        integration.last_error = message
        self.session.commit()
        if isinstance(exc, ProvisioningError | CatalogError):
            log.warning("provisioning run %s failed: %s", run.id, message)
        else:
            log.error("provisioning run %s failed: %s", run.id, message, exc_info=exc)

    def _mark_retrying(self, exc: BaseException) -> None:
        if not self._outcome_guard():
            return
        run = self.run_obj
        run.status = RunStatus.QUEUED.value  # RQ's Retry claims it again
        run.error = f"{_message(exc)} (retrying)"
        self._record_calls()
        self.integration.last_error = run.error
        self.session.commit()
        log.info("provisioning run %s will be retried: %s", run.id, run.error)

    def _stop(self, reason: str) -> None:
        """The integration was disconnected or changed: cancel the run, leave the integration be."""
        self.session.rollback()
        self.session.execute(
            update(ProvisioningRun)
            .where(ProvisioningRun.id == self.run_id, ProvisioningRun.status == RunStatus.RUNNING.value)
            .values(status=RunStatus.CANCELLED.value, error=reason, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        self.session.execute(
            update(ProvisioningStep)
            .where(
                ProvisioningStep.run_id == self.run_id,
                ProvisioningStep.status.in_([StepStatus.PENDING.value, StepStatus.RUNNING.value]),
            )
            .values(status=StepStatus.SKIPPED.value)
            .execution_options(synchronize_session=False)
        )
        self.session.commit()
        self.session.expire_all()
        log.info("provisioning run %s stopped: %s", self.run_id, reason)

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2)


def _timed(fn: Callable[[], Any]) -> tuple[Any, datetime, float]:
    began = utcnow()
    t0 = time.monotonic()
    return fn(), began, time.monotonic() - t0


def _message(exc: BaseException) -> str:
    if isinstance(exc, ProvisioningError | CatalogError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); try again later, and contact support if it persists"


def _retries_left() -> bool:
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:
        return False
    return bool(job is not None and (job.retries_left or 0) > 0)
