"""RQ job entry points. Ids in, their own database session, no Flask.

``provision(run_id)`` runs the saga resolve organization → ensure meters → ensure benefits →
ensure products → ensure webhook endpoint → save mappings, committing the step ledger after each
step so the owner's page shows progress live. Independent Polar calls overlap: the four list calls
start together, the webhook endpoint is ensured in the background while meters, benefits and
products are, and the creates within a step run concurrently.

Failures: a ``ProvisioningError`` fails the run with its message (returned, not raised: retrying
cannot fix it, and RQ's Retry would retry anything raised); a ``TransientPolarError`` is raised so
RQ's Retry runs the job again, and fails the run only when no retry is left.
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
from sqlalchemy import select
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


class _StepFailed(Exception):
    pass


class _Provisioner:
    def __init__(self, session: Session, settings: Settings, run_id: str) -> None:
        self.session = session
        self.settings = settings
        self.run_id = run_id
        self.api: PolarApi | None = None

    # -- the saga ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        run = self.session.get(ProvisioningRun, self.run_id)
        if run is None:
            # Deleted with its workspace, or a job from another database: nothing to retry.
            log.warning("provisioning run %s does not exist; dropping its job", self.run_id)
            return {"run_id": self.run_id, "status": "missing"}
        if run.status == RunStatus.SUCCEEDED.value:
            return {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}
        integration = self.session.get(PolarIntegration, run.integration_id)
        assert integration is not None
        self.run_obj, self.integration = run, integration

        run.status = RunStatus.RUNNING.value
        run.started_at = utcnow()
        run.finished_at = None
        run.error = None
        run.attempts = (run.attempts or 0) + 1
        for step in run.steps:
            step.status, step.error, step.duration_ms = StepStatus.PENDING.value, None, None
        self.session.commit()

        try:
            catalog = load_catalog(self.settings.plans_file)
            run.catalog_revision = catalog.revision
            token = fresh_access_token(self.session, self.settings, integration, redis_conn=self._redis())
            self.api = PolarApi(self.settings.polar_api_url, token)
            with ThreadPoolExecutor(MAX_PARALLEL_CALLS, thread_name_prefix="polar") as executor:
                self._saga(catalog, executor)
        except TransientPolarError as exc:
            if _retries_left():
                self._mark_retrying(exc)
            else:
                self._fail(exc)
            raise
        except (ProvisioningError, CatalogError) as exc:
            self._fail(exc)
            return {"run_id": run.id, "status": run.status, "error": run.error, "api_calls": run.api_calls}
        except Exception as exc:
            self._fail(exc)
            raise

        run.status = RunStatus.SUCCEEDED.value
        run.finished_at = utcnow()
        run.api_calls = self.api.counts
        integration.status = IntegrationStatus.READY.value
        integration.provisioned_at = run.finished_at
        integration.catalog_revision = catalog.revision
        integration.last_error = None
        self.session.commit()
        log.info("provisioning run %s succeeded: %s", run.id, run.api_calls)
        return {"run_id": run.id, "status": run.status, "api_calls": run.api_calls}

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
        step = self._step_row(name)
        step.status = StepStatus.RUNNING.value
        step.started_at = utcnow()
        self.session.commit()
        started = time.monotonic()
        polar_ids: list[dict[str, Any]] = []
        try:
            yield polar_ids
        except BaseException as exc:
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
        integration = self.integration
        vault = vault_for(self.settings)
        integration.webhook_endpoint_id = hook.endpoint_id
        current = vault.decrypt(integration.webhook_secret) if integration.webhook_secret else None
        if current != hook.secret:
            integration.webhook_secret = vault.encrypt(hook.secret)

    def _save_mappings(self, product_ids: dict[str, str]) -> list[dict[str, Any]]:
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

    def _fail(self, exc: BaseException) -> None:
        self.session.rollback()
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
        log.warning("provisioning run %s failed: %s", run.id, message)

    def _mark_retrying(self, exc: BaseException) -> None:
        self.session.rollback()
        run = self.run_obj
        run.status = RunStatus.QUEUED.value
        run.error = f"{_message(exc)} (retrying)"
        self._record_calls()
        self.integration.last_error = run.error
        self.session.commit()
        log.info("provisioning run %s will be retried: %s", run.id, run.error)

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2)


def _timed(fn: Callable[[], Any]) -> tuple[Any, datetime, float]:
    began = utcnow()
    t0 = time.monotonic()
    return fn(), began, time.monotonic() - t0


def _message(exc: BaseException) -> str:
    if isinstance(exc, ProvisioningError | CatalogError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); support has been notified, try again later"


def _retries_left() -> bool:
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:
        return False
    return bool(job is not None and (job.retries_left or 0) > 0)
