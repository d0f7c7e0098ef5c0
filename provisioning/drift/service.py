"""Drift: a product or benefit the platform manages, changed at Polar (in its dashboard, say) away
from the catalog.

Polar sends ``product.updated`` / ``benefit.updated`` with the object as it now is; event
processing hands each to :func:`observe`, which compares it with the catalog, field by field, with
the comparison provisioning makes (``reconcile.compare``), and keeps one ``catalog_drift`` row per
connection, object and field: opened when the field differs, resolved when a later event shows it
as the catalog says again, or when a run succeeds (the run found and restored it).

What the object is compared with: the catalog revision of the connection's run under way, if one
is running (its own writes come back as events), else the revision the connection was provisioned
with, else the running catalog. A product is compared only as its plan's product in the
connection's mappings; others of ours (replaced, duplicates, plans gone from the catalog) are
provisioning's to archive, not drift. Which meter a metered price or a meter credit counts is
compared through the connection's meter mappings (an event names a meter by Polar's id only);
while a catalog meter is not mapped yet, it is left to runs.

``POLAR_DRIFT_POLICY``: ``restore`` (default) starts a run for the connection when drift is
opened (a burst of events gets the one run queued; drift seen while a run is under way gets a
run after it); ``report`` records only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from provisioning.catalog import Catalog
from provisioning.catalog import repository as catalogs
from provisioning.catalog.desired import BENEFIT_KEY, PLAN_KEY, WORKSPACE_KEY, benefit_body, product_body
from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.drift import repository, words
from provisioning.drift.models import BENEFIT, PRODUCT, CatalogDrift, CatalogObservation, Observation
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.reconcile.compare import (
    BENEFIT_FIELDS,
    PRODUCT_FIELDS,
    Difference,
    benefit_differences,
    product_differences,
)
from provisioning.runs import execution
from provisioning.runs import repository as runs
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.queue import enqueue_after_commit
from provisioning.runs.service import RunRefused, start_run

log = logging.getLogger(__name__)
RESTORE = "restore"  # POLAR_DRIFT_POLICY; "report" records only
DELETED = "deleted"
# Connections a restore run is started for: others wait for their owner or staff (a failed setup,
# a grant to renew); a connection provisioning already has its run.
RESTORABLE = (IntegrationStatus.READY, IntegrationStatus.PROVISIONING)
TRIGGER = "drift"


def observe(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    event_type: str,
    data: dict[str, Any],
    running: Catalog,
    version: datetime | None,
) -> Observation:
    """Compare a product or benefit Polar sent (the webhook's ``data``, Polar's JSON; ``version``
    its ``modified_at``, else ``created_at``) with the catalog revision the connection was
    provisioned with; record or resolve drift. An object older than one compared before is not
    compared again (``STALE``); one the platform does not manage is ``NOT_OURS`` (the caller marks
    the event ignored)."""
    kind = event_type.partition(".")[0]
    polar_id = data.get("id")
    if not isinstance(polar_id, str) or not polar_id or kind not in (PRODUCT, BENEFIT):
        return Observation.NOT_OURS
    restoring = settings.polar_drift_policy == RESTORE and integration.status in RESTORABLE
    if restoring:
        # The connection's row before its drift rows, as a run's success takes them: a restore
        # then locks nothing new after the drift rows, so the two never deadlock.
        integrations.get(session, integration.id, lock=True)
    mapped: dict[str, str] = {}  # a product's: plan id → the plan's product in the mappings
    if kind == PRODUCT:
        mapped = {m.plan_id: m.polar_product_id for m in integrations.mappings(session, integration.id)}
        plan_of = {product_id: plan_id for plan_id, product_id in mapped.items()}
        catalog_id = plan_of.get(polar_id) or _ours(integration, _metadata(data), PLAN_KEY)
    else:
        catalog_id = _ours(integration, _metadata(data), BENEFIT_KEY)
    if catalog_id is None:
        return Observation.NOT_OURS
    if not _newest(session, integration, polar_id, version):
        return Observation.STALE
    if kind == PRODUCT:
        opened = _observe_product(session, integration, polar_id, catalog_id, mapped, data, running)
    else:
        opened = _observe_benefit(session, integration, polar_id, catalog_id, data, running)
    if opened and settings.polar_drift_policy == RESTORE:
        restore(session, settings, integration)
    return Observation.COMPARED


def _newest(session: Session, integration: PolarIntegration, polar_id: str, version: datetime | None) -> bool:
    """Whether ``version`` of the object is as new as any compared before (then kept as the newest).
    An unversioned copy never goes before a versioned one."""
    seen = repository.observation(session, integration.id, polar_id)
    if seen is None:
        repository.add_observation(
            session, CatalogObservation(integration_id=integration.id, polar_id=polar_id, version=version)
        )
        return True
    if seen.version is not None and (version is None or version < seen.version):
        return False
    seen.version, seen.observed_at = version, utcnow()
    return True


def _metadata(data: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = data.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _ours(integration: PolarIntegration, metadata: Mapping[str, Any], key: str) -> str | None:
    """The catalog id our metadata names, when it is this connection's workspace's."""
    value = metadata.get(key)
    if not isinstance(value, str) or metadata.get(WORKSPACE_KEY) != integration.workspace_id:
        return None
    return value


def _observe_product(
    session: Session,
    integration: PolarIntegration,
    polar_id: str,
    plan_id: str,
    mapped: Mapping[str, str],
    data: dict[str, Any],
    running: Catalog,
) -> bool:
    """Whether drift was opened (or changed)."""
    catalog = desired_catalog(session, integration, running)
    plan = next((p for p in catalog.plans if p.id == plan_id), None)
    if plan is None or mapped.get(plan_id) != polar_id:
        # Not the plan's product (not mapped yet, replaced, a duplicate, a plan gone): provisioning's.
        return _settle(session, integration, polar_id)
    polar_meters = _polar_meters(session, integration, catalog)
    # Without the meters' Polar ids, metered prices are compared without their meter.
    meter_ids = polar_meters or {m.id: m.id for m in catalog.meters}
    body = product_body(
        plan,
        meter_ids,
        workspace_id=integration.workspace_id,
        revision=catalog.revision,
        organization_id=integration.polar_org_id or "",
    )
    differences = product_differences(data, body, meters=polar_meters is not None)
    fields = {d.field for d in differences}
    if {"is_archived", "recurring_interval"} <= fields:
        # A run archives a plan's product whose billing interval changed and creates another.
        return _settle(session, integration, polar_id)
    meter_names = {meter_ids[m.id]: m.name for m in catalog.meters}
    return _record(
        session,
        integration,
        Observed(PRODUCT, polar_id, plan.id, plan.name, PRODUCT_FIELDS, meter_names),
        differences,
    )


def _observe_benefit(
    session: Session,
    integration: PolarIntegration,
    polar_id: str,
    benefit_id: str,
    data: dict[str, Any],
    running: Catalog,
) -> bool:
    catalog = desired_catalog(session, integration, running)
    benefit = next((b for b in catalog.benefits if b.id == benefit_id), None)
    if benefit is None or benefit.type != data.get("type"):
        return _settle(session, integration, polar_id)  # provisioning creates the catalog's
    props = data.get("properties")
    props = props if isinstance(props, dict) else {}
    polar_meters = _polar_meters(session, integration, catalog) or {}
    # The credited meter: the catalog's, by its Polar id; unmapped, as Polar has it (not compared).
    credited = polar_meters.get(benefit.meter or "") or str(props.get("meter_id") or "")
    body = benefit_body(
        benefit,
        {benefit.meter: credited} if benefit.meter else {},
        workspace_id=integration.workspace_id,
        revision=catalog.revision,
        organization_id=integration.polar_org_id or "",
    )
    differences = benefit_differences(data, body)
    if data.get("is_deleted"):
        differences = [Difference(DELETED, False, True)]
    label = f"The benefit “{benefit.description}”"
    return _record(
        session,
        integration,
        Observed(
            BENEFIT,
            polar_id,
            benefit.id,
            label,
            (*BENEFIT_FIELDS, DELETED),
            {polar_meters[m.id]: m.name for m in catalog.meters if m.id in polar_meters},
        ),
        differences,
    )


@dataclass(frozen=True)
class Observed:
    object_type: str
    polar_id: str
    catalog_id: str
    label: str  # how messages name it: the plan's name, the benefit's description
    fields: tuple[str, ...]  # every field compared: those not in the differences are resolved
    meter_names: Mapping[str, str]


def _record(
    session: Session, integration: PolarIntegration, observed: Observed, differences: list[Difference]
) -> bool:
    """Open or update a row per difference, resolve the object's other open rows. True when a row
    was opened or now says something else."""
    rows = repository.of_object(session, integration.id, observed.polar_id)
    now = utcnow()
    changed = False
    for difference in differences:
        catalog_value, polar_value = words.values(difference, observed.meter_names)
        message = words.message(observed.label, difference, catalog_value, polar_value)
        row = rows.get(difference.field)
        if row is None:
            repository.add(
                session,
                CatalogDrift(
                    integration_id=integration.id,
                    object_type=observed.object_type,
                    polar_id=observed.polar_id,
                    catalog_id=observed.catalog_id,
                    field=difference.field,
                    catalog_value=catalog_value,
                    polar_value=polar_value,
                    message=message,
                    detected_at=now,
                ),
            )
            changed = True
            continue
        if row.is_open and (row.catalog_value, row.polar_value, row.message) == (
            catalog_value,
            polar_value,
            message,
        ):
            continue  # the same drift, seen again
        if not row.is_open:
            row.detected_at, row.resolved_at = now, None
        row.catalog_id, row.catalog_value, row.polar_value, row.message = (
            observed.catalog_id,
            catalog_value,
            polar_value,
            message,
        )
        changed = True
    differing = {d.field for d in differences}
    for field, row in rows.items():
        if row.is_open and field not in differing and field in observed.fields:
            row.resolved_at = now
    session.flush()
    return changed


def _settle(session: Session, integration: PolarIntegration, polar_id: str) -> bool:
    """An object of ours that is not compared: its open rows no longer apply."""
    now = utcnow()
    for row in repository.of_object(session, integration.id, polar_id).values():
        if row.is_open:
            row.resolved_at = now
    session.flush()
    return False


def _polar_meters(session: Session, integration: PolarIntegration, catalog: Catalog) -> dict[str, str] | None:
    """Catalog meter id → Polar meter id for every meter of ``catalog``, from the connection's meter
    mappings (saved by each run); None unless each is mapped (a revision a run is still making)."""
    mapped = {m.meter_id: m.polar_meter_id for m in integrations.meter_mappings(session, integration.id)}
    if any(m.id not in mapped for m in catalog.meters):
        return None
    return {m.id: mapped[m.id] for m in catalog.meters}


def desired_catalog(session: Session, integration: PolarIntegration, running: Catalog) -> Catalog:
    """The catalog Polar should match now: the running run's revision (its own writes come back as
    events), else the connection's provisioned revision, else the running catalog."""
    run = runs.active_run(session, integration.id)
    revision = (
        run.catalog_revision
        if run is not None and run.status == RunStatus.RUNNING and run.catalog_revision
        else integration.catalog_revision
    )
    if not revision or revision == running.revision:
        return running
    stored = catalogs.load_revision(session, revision)
    if stored is None:
        log.warning("catalog revision %s is not stored; comparing with the running catalog", revision)
        return running
    return stored


def restore(session: Session, settings: Settings, integration: PolarIntegration) -> ProvisioningRun | None:
    """Start a run that puts the catalog's version back (or get the one queued or running); its
    job is enqueued after the commit."""
    if integration.status not in RESTORABLE:
        return None
    try:
        started = start_run(session, integration, trigger=TRIGGER)
    except RunRefused as exc:
        log.info("drift of connection %s is not restored now: %s", integration.id, exc)
        return None
    if started.created:
        enqueue_after_commit(session, started.run.id, settings.redis_url)
    return started.run


def open_drift(session: Session, integration_id: str, *, limit: int | None = None) -> Sequence[CatalogDrift]:
    """The connection's open drift, the latest first."""
    return repository.open_drift(session, integration_id, limit=limit)


@dataclass(frozen=True)
class OpenDrift:
    """What a page shows of a connection's open drift: the latest rows and how many there are."""

    items: Sequence[CatalogDrift]
    total: int


def open_summary(session: Session, integration_id: str, *, limit: int = 10) -> OpenDrift:
    items = repository.open_drift(session, integration_id, limit=limit)
    total = len(items) if len(items) < limit else repository.count_open(session, integration_id)
    return OpenDrift(items, total)


def after_run(
    session: Session, settings: Settings, run: ProvisioningRun, integration: PolarIntegration
) -> None:
    """A run succeeded: the drift seen before it started is the catalog again (its steps listed
    Polar after that and restored it). Drift seen while it ran may have come after its listing:
    with ``restore``, another run follows."""
    if run.started_at is None:
        return
    resolved = repository.resolve_detected_before(session, integration.id, run.started_at, utcnow())
    if resolved:
        log.info("run %s restored the catalog: %d drift(s) resolved", run.id, resolved)
    if settings.polar_drift_policy == RESTORE and repository.any_open_since(
        session, integration.id, run.started_at
    ):
        restore(session, settings, integration)


execution.on_success(after_run)
