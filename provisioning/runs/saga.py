"""The provisioning saga: an ordered list of named, idempotent steps, each a function of the run.

verify account → resolve organization → ensure meters → ensure benefits → ensure products →
ensure webhook endpoint → save mappings.

Independent Polar calls overlap: ``start`` sends the userinfo call and, when the organization is
known, the four list calls at once; the account check therefore costs no extra round trip on the
critical chain. No step writes to Polar before ``verify_account`` has confirmed that the token
belongs to the Polar account that connected. The webhook endpoint is ensured in the background
while meters, benefits and products are, and the creates within a step run concurrently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import PolarIntegration, PolarMeterMapping, PolarProductMapping
from provisioning.integrations.service import (
    SecretIntegrityError,
    decrypt_secret,
    encrypt_secret,
    workspace_name,
)
from provisioning.polar.client import PolarApi
from provisioning.polar.errors import ProvisioningError
from provisioning.reconcile import benefits, meters, products, webhook
from provisioning.reconcile.context import RunContext
from provisioning.reconcile.organization import create_for_workspace
from provisioning.runs.ledger import StepRecord
from provisioning.webhooks.urls import webhook_url

ACCOUNT_SWAPPED = (
    "The stored Polar token belongs to another Polar account than the one that connected this "
    "workspace, so nothing was changed in Polar. Reconnect Polar with the right account"
)


def _timed(fn: Callable[[], Any]) -> tuple[Any, datetime, float]:
    began = utcnow()
    t0 = time.monotonic()
    return fn(), began, time.monotonic() - t0


@dataclass
class Saga:
    """One run's state, shared by its steps."""

    session: Session
    settings: Settings
    integration: PolarIntegration
    api: PolarApi
    catalog: Catalog
    executor: ThreadPoolExecutor
    # Locks the integration's and the run's rows until the next commit, or raises Stopped.
    guard: Callable[[], None]
    pending: dict[str, Future[Any]] = field(default_factory=dict)
    ctx: RunContext | None = None
    meter_ids: dict[str, str] = field(default_factory=dict)
    benefit_ids: dict[str, str] = field(default_factory=dict)
    product_ids: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        """Send every call that needs nothing but the token and the organization."""
        self.pending["userinfo"] = self.executor.submit(
            _timed,
            lambda: self.api.read(
                self.api.sdk.oauth2.userinfo, action="read the connected Polar account", scope="openid"
            ),
        )
        if self.integration.polar_org_id:
            self._prefetch()

    def _prefetch(self) -> None:
        assert self.integration.polar_org_id
        self.ctx = RunContext(
            api=self.api,
            catalog=self.catalog,
            workspace_id=self.integration.workspace_id,
            organization_id=self.integration.polar_org_id,
            webhook_url=webhook_url(self.settings, self.integration),
            executor=self.executor,
        )
        ctx = self.ctx
        for name, fetch in (
            ("meters", meters.fetch),
            ("benefits", benefits.fetch),
            ("products", products.fetch),
            ("webhooks", webhook.fetch),
        ):
            self.pending[name] = self.executor.submit(fetch, ctx)

    def context(self) -> RunContext:
        assert self.ctx is not None
        return self.ctx


def verify_account(saga: Saga, record: StepRecord) -> None:
    """Record the Polar account the token belongs to; stop before any write if it is not the
    account that connected (a replaced or swapped token)."""
    info, began, took = saga.pending.pop("userinfo").result()
    record.background = (began, took)
    account = str(info.sub)
    expected = saga.integration.polar_user_id
    if expected and account != expected:
        raise ProvisioningError(ACCOUNT_SWAPPED, needs_reconnect=True)
    if not expected:
        saga.guard()
        saga.integration.polar_user_id = account
    record.polar_ids.append({"kind": "account", "id": account, "action": "verified"})


def resolve_organization(saga: Saga, record: StepRecord) -> None:
    integration = saga.integration
    if integration.polar_org_id:
        record.polar_ids.append({"kind": "organization", "id": integration.polar_org_id, "action": "found"})
    elif len(integration.reachable_organizations or []) > 1:
        raise ProvisioningError("Choose which Polar organization to use on the billing page")
    else:
        org = create_for_workspace(
            saga.api, workspace_name(saga.session, integration.workspace_id), integration.workspace_id
        )
        saga.guard()
        integration.polar_org_id, integration.polar_org_name, integration.polar_org_slug = (
            org.id,
            org.name,
            org.slug,
        )
        record.polar_ids.append(
            {"kind": "organization", "id": org.id, "action": "created" if org.created else "found"}
        )
    if saga.ctx is None:
        saga._prefetch()
    # The account is verified and the organization known: the endpoint can be ensured meanwhile.
    hooks = saga.pending.pop("webhooks")
    ctx = saga.context()
    saga.pending["webhook_endpoint"] = saga.executor.submit(
        _timed, lambda: webhook.ensure(ctx, actual=hooks.result())
    )


def ensure_meters(saga: Saga, record: StepRecord) -> None:
    result = meters.ensure(saga.context(), actual=saga.pending.pop("meters").result())
    saga.meter_ids = result.ids
    record.polar_ids += result.polar_ids


def ensure_benefits(saga: Saga, record: StepRecord) -> None:
    result = benefits.ensure(saga.context(), saga.meter_ids, actual=saga.pending.pop("benefits").result())
    saga.benefit_ids = result.ids
    record.polar_ids += result.polar_ids


def ensure_products(saga: Saga, record: StepRecord) -> None:
    result = products.ensure(
        saga.context(), saga.meter_ids, saga.benefit_ids, actual=saga.pending.pop("products").result()
    )
    saga.product_ids = result.ids
    record.polar_ids += result.polar_ids


def ensure_webhook_endpoint(saga: Saga, record: StepRecord) -> None:
    hook, began, took = saga.pending.pop("webhook_endpoint").result()
    record.background = (began, took)
    saga.guard()  # never write a secret back over a disconnect
    integration = saga.integration
    integration.webhook_endpoint_id = hook.endpoint_id
    current = None
    if integration.webhook_secret:
        try:
            current = decrypt_secret(
                saga.settings, integration.id, "webhook_secret", integration.webhook_secret
            )
        except SecretIntegrityError:
            current = None  # logged for staff; Polar's own secret replaces the moved one
    if current != hook.secret:
        integration.webhook_secret = encrypt_secret(saga.settings, integration, "webhook_secret", hook.secret)
    record.polar_ids += hook.polar_ids


def save_mappings(saga: Saga, record: StepRecord) -> None:
    """The plans' products and the catalog's meters as this run found or made them."""
    saga.guard()
    session, integration = saga.session, saga.integration
    _sync_mappings(
        session,
        record,
        "product_mapping",
        {m.plan_id: m for m in integrations.mappings(session, integration.id)},
        saga.product_ids,
        lambda plan_id, product_id: PolarProductMapping(
            integration_id=integration.id, plan_id=plan_id, polar_product_id=product_id
        ),
        "polar_product_id",
    )
    _sync_mappings(
        session,
        record,
        "meter_mapping",
        {m.meter_id: m for m in integrations.meter_mappings(session, integration.id)},
        saga.meter_ids,
        lambda meter_id, polar_id: PolarMeterMapping(
            integration_id=integration.id, meter_id=meter_id, polar_meter_id=polar_id
        ),
        "polar_meter_id",
    )
    session.flush()
    session.expire(integration, ["product_mappings", "meter_mappings"])


def _sync_mappings(
    session: Session,
    record: StepRecord,
    kind: str,
    existing: dict[str, Any],
    wanted: dict[str, str],
    make: Callable[[str, str], Any],
    polar_field: str,
) -> None:
    """Make the ``existing`` mapping rows (by catalog id) say ``wanted`` (catalog id → Polar id)."""
    for key, polar_id in wanted.items():
        mapping = existing.pop(key, None)
        if mapping is None:
            session.add(make(key, polar_id))
            record.polar_ids.append({"kind": kind, "id": polar_id, "action": "created"})
        elif getattr(mapping, polar_field) != polar_id:
            setattr(mapping, polar_field, polar_id)
            record.polar_ids.append({"kind": kind, "id": polar_id, "action": "updated"})
    for stale in existing.values():
        session.delete(stale)
        record.polar_ids.append({"kind": kind, "id": getattr(stale, polar_field), "action": "removed"})


Step = Callable[[Saga, StepRecord], None]
STEPS: tuple[tuple[str, Step], ...] = (
    ("verify_account", verify_account),
    ("resolve_organization", resolve_organization),
    ("ensure_meters", ensure_meters),
    ("ensure_benefits", ensure_benefits),
    ("ensure_products", ensure_products),
    ("ensure_webhook_endpoint", ensure_webhook_endpoint),
    ("save_mappings", save_mappings),
)
STEP_NAMES = tuple(name for name, _ in STEPS)
