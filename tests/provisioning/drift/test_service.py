"""Drift against the local Polar: a provisioned product or benefit changed through Polar's API, as
an owner would in Polar's dashboard, then fed to ``observe`` as the ``product.updated`` /
``benefit.updated`` event Polar sent about it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisioning.billing.processing import version_of
from provisioning.catalog import Catalog, load_catalog
from provisioning.catalog import repository as catalogs
from provisioning.config import Settings
from provisioning.drift import service as drift
from provisioning.drift.models import CatalogDrift, Observation
from provisioning.integrations.models import PolarIntegration, PolarMeterMapping
from provisioning.integrations.service import access_token
from provisioning.runs import repository as runs
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.queue import connect as redis_connect
from provisioning.runs.queue import get_queue
from provisioning.runs.service import start_run

COMPARED, NOT_OURS, STALE = Observation.COMPARED, Observation.NOT_OURS, Observation.STALE


@pytest.fixture
def running(settings: Settings) -> Catalog:
    return load_catalog(settings.plans_file)


@pytest.fixture
def ready(session: Session, settings: Settings, connect: Any) -> PolarIntegration:
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    return connected.integration


@pytest.fixture
def report(settings: Settings) -> Settings:
    return settings.model_copy(update={"polar_drift_policy": "report"})


class Dashboard:
    """The owner at Polar: changes the connection's objects through Polar's API with the
    connection's own grant, and reads the events Polar sent to our endpoint about them."""

    def __init__(self, control: httpx.Client, settings: Settings, integration: PolarIntegration) -> None:
        self.control = control
        self.integration = integration
        self.headers = {"Authorization": f"Bearer {access_token(settings, integration)}"}

    def product_id(self, plan_id: str) -> str:
        return next(m.polar_product_id for m in self.integration.product_mappings if m.plan_id == plan_id)

    def product(self, product_id: str) -> dict[str, Any]:
        response = self.control.get(f"/v1/products/{product_id}", headers=self.headers)
        response.raise_for_status()
        return dict(response.json())

    def update_product(self, product_id: str, **changes: Any) -> dict[str, Any]:
        """PATCH the product; returns the ``product.updated`` event's data Polar sent about it."""
        response = self.control.patch(f"/v1/products/{product_id}", json=changes, headers=self.headers)
        response.raise_for_status()
        return self.last_event("product.updated", product_id)

    def set_price(self, product_id: str, cents: int) -> dict[str, Any]:
        return self.update_product(
            product_id, prices=[{"amount_type": "fixed", "price_amount": cents, "price_currency": "usd"}]
        )

    def create_meter(self, name: str) -> str:
        """A meter of the owner's own (no metadata of ours); its Polar id."""
        response = self.control.post(
            "/v1/meters/",
            json={
                "name": name,
                "filter": {
                    "conjunction": "and",
                    "clauses": [{"property": "name", "operator": "eq", "value": "x"}],
                },
                "aggregation": {"func": "count"},
                "organization_id": self.integration.polar_org_id,
            },
            headers=self.headers,
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def benefit(self, catalog_id: str) -> dict[str, Any]:
        response = self.control.get(
            "/v1/benefits/",
            params={"organization_id": self.integration.polar_org_id, "limit": 100},
            headers=self.headers,
        )
        response.raise_for_status()
        return next(
            b for b in response.json()["items"] if b["metadata"].get("connect_polar_benefit") == catalog_id
        )

    def update_benefit(self, benefit: dict[str, Any], **changes: Any) -> dict[str, Any]:
        response = self.control.patch(
            f"/v1/benefits/{benefit['id']}", json={"type": benefit["type"], **changes}, headers=self.headers
        )
        response.raise_for_status()
        return self.last_event("benefit.updated", benefit["id"])

    def last_event(self, event_type: str, object_id: str) -> dict[str, Any]:
        events = self.control.get(
            "/_emulator/webhook-events",
            params={"type": event_type, "endpoint_id": self.integration.webhook_endpoint_id},
        ).json()
        payloads = [json.loads(e["payload"]) for e in events]
        data = [p["data"] for p in payloads if p["data"]["id"] == object_id]
        assert data, f"Polar sent no {event_type} about {object_id}"
        return dict(data[-1])


@pytest.fixture
def dashboard(control: httpx.Client, settings: Settings, ready: PolarIntegration) -> Dashboard:
    return Dashboard(control, settings, ready)


def observe(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    event_type: str,
    data: dict[str, Any],
    running: Catalog,
) -> Observation:
    """``drift.observe`` as event processing calls it: with the object's version."""
    return drift.observe(session, settings, integration, event_type, data, running, version_of(data))


def rows(session: Session, integration: PolarIntegration) -> list[CatalogDrift]:
    session.expire_all()
    return list(
        session.scalars(
            select(CatalogDrift)
            .where(CatalogDrift.integration_id == integration.id)
            .order_by(CatalogDrift.field)
        )
    )


def drift_runs(session: Session, integration: PolarIntegration) -> list[ProvisioningRun]:
    return list(
        session.scalars(
            select(ProvisioningRun).where(
                ProvisioningRun.integration_id == integration.id, ProvisioningRun.trigger == "drift"
            )
        )
    )


def test_a_price_changed_at_polar_is_recorded_once_and_resolved_when_it_is_back(
    session, report, ready, dashboard, running
) -> None:
    pro = dashboard.product_id("pro-monthly")
    changed = dashboard.set_price(pro, 3500)

    assert observe(session, report, ready, "product.updated", changed, running) == COMPARED
    session.commit()
    [row] = rows(session, ready)
    assert row.object_type == "product" and row.polar_id == pro and row.catalog_id == "pro-monthly"
    assert row.field == "prices" and (row.catalog_value, row.polar_value) == ("$29.00", "$35.00")
    assert row.message == "Pro (monthly) price changed at Polar to $35.00; the catalog says $29.00"
    assert row.resolved_at is None
    first = (row.id, row.detected_at)

    # The same event again (a redelivery), or another copy of the same product: nothing new.
    assert observe(session, report, ready, "product.updated", changed, running) == COMPARED
    session.commit()
    [again] = rows(session, ready)
    assert (again.id, again.detected_at, again.resolved_at) == (*first, None)

    back = dashboard.set_price(pro, 2900)
    assert observe(session, report, ready, "product.updated", back, running) == COMPARED
    session.commit()
    [resolved] = rows(session, ready)
    assert resolved.id == first[0] and resolved.resolved_at is not None
    assert drift.open_drift(session, ready.id) == []
    assert drift_runs(session, ready) == []  # report: recorded only


def test_an_older_event_arriving_after_a_newer_one_changes_nothing(
    session, report, ready, dashboard, running
) -> None:
    """Polar does not order its events: the dashboard's change, then its undo, delivered the other
    way round, leaves no drift open."""
    pro = dashboard.product_id("pro-monthly")
    changed = dashboard.set_price(pro, 3500)
    back = dashboard.set_price(pro, 2900)
    assert version_of(changed) is not None and version_of(changed) < version_of(back)

    assert observe(session, report, ready, "product.updated", back, running) == COMPARED
    assert observe(session, report, ready, "product.updated", changed, running) == STALE
    unversioned = {k: v for k, v in changed.items() if k not in ("modified_at", "created_at")}
    assert observe(session, report, ready, "product.updated", unversioned, running) == STALE
    session.commit()
    assert rows(session, ready) == []

    # A newer change is compared again.
    again = dashboard.set_price(pro, 3900)
    assert observe(session, report, ready, "product.updated", again, running) == COMPARED
    session.commit()
    [row] = rows(session, ready)
    assert (row.polar_value, row.resolved_at) == ("$39.00", None)


def test_a_rename_an_archive_and_a_description_are_each_a_row_in_words(
    session, report, ready, dashboard, running
) -> None:
    pro = dashboard.product_id("pro-monthly")
    changed = dashboard.update_product(pro, name="Pro+", is_archived=True, description="For everyone")

    assert observe(session, report, ready, "product.updated", changed, running) == COMPARED
    session.commit()
    messages = {r.field: r.message for r in rows(session, ready)}
    assert messages == {
        "name": "Pro (monthly) was renamed at Polar to “Pro+”; the catalog says “Pro (monthly)”",
        "is_archived": "Pro (monthly) was archived at Polar; the catalog offers it",
        "description": (
            "Pro (monthly) description changed at Polar to “For everyone”; the catalog says “For growing teams”"
        ),
    }

    # Only the name is put back at Polar: the others stay open, the name's row is resolved.
    partly = dashboard.update_product(pro, name="Pro (monthly)")
    observe(session, report, ready, "product.updated", partly, running)
    session.commit()
    state = {r.field: r.resolved_at is None for r in rows(session, ready)}
    assert state == {"name": False, "is_archived": True, "description": True}
    assert {d.field for d in drift.open_drift(session, ready.id)} == {"description", "is_archived"}


def _reprice_usage(dashboard: Dashboard, unit_amount: str, meter_id: str | None = None) -> dict[str, Any]:
    """The owner changes the usage plan's metered price at Polar (counting ``meter_id``, or the
    meter it counts); the ``product.updated`` Polar sent."""
    usage = dashboard.product_id("usage")
    product = dashboard.product(usage)
    fixed = next(p for p in product["prices"] if p["amount_type"] == "fixed")
    metered = next(p for p in product["prices"] if p["amount_type"] == "metered_unit")
    metered_price = {"amount_type": "metered_unit", "meter_id": meter_id or metered["meter_id"]}
    return dashboard.update_product(
        usage, prices=[{"id": fixed["id"]}, {**metered_price, "unit_amount": unit_amount}]
    )


def _only_message(session, settings, ready, changed, running) -> str:
    """The one drift row the product's event opened, in words."""
    assert observe(session, settings, ready, "product.updated", changed, running) == COMPARED
    session.commit()
    [row] = rows(session, ready)
    return row.message


def test_a_metered_price_is_compared_by_its_unit_amount(session, report, ready, dashboard, running) -> None:
    changed = _reprice_usage(dashboard, "0.08")

    assert _only_message(session, report, ready, changed, running) == (
        "Pay as you go prices changed at Polar to $9.00 + $0.0008 per unit of API calls; "
        "the catalog says $9.00 + $0.0005 per unit of API calls"
    )


def test_a_metered_price_counting_another_meter_is_drift(session, report, ready, dashboard, running) -> None:
    changed = _reprice_usage(dashboard, "0.05", meter_id=dashboard.create_meter("Other calls"))

    assert _only_message(session, report, ready, changed, running) == (
        "Pay as you go prices changed at Polar to $9.00 + $0.0005 per unit of Other calls; "
        "the catalog says $9.00 + $0.0005 per unit of API calls"
    )


def test_without_the_meters_mappings_the_meter_is_left_to_runs(
    session, report, ready, dashboard, running
) -> None:
    # A connection provisioned before meter mappings were kept: its meters are not known by id.
    session.execute(delete(PolarMeterMapping).where(PolarMeterMapping.integration_id == ready.id))
    changed = _reprice_usage(dashboard, "0.05", meter_id=dashboard.create_meter("Other calls"))

    assert observe(session, report, ready, "product.updated", changed, running) == COMPARED
    session.commit()
    assert rows(session, ready) == []


def test_a_meter_credit_crediting_another_meter_is_drift(session, report, ready, dashboard, running) -> None:
    credits = dashboard.benefit("api-credits")
    other = dashboard.create_meter("Other calls")
    changed = dashboard.update_benefit(credits, properties={**credits["properties"], "meter_id": other})

    assert observe(session, report, ready, "benefit.updated", changed, running) == COMPARED
    session.commit()
    [row] = rows(session, ready)
    assert row.message == (
        "The benefit “10,000 API calls per month” settings changed at Polar to units 10,000, rollover no, "
        "another meter; the catalog says units 10,000, rollover no, meter “API calls”"
    )


def test_a_benefit_changed_at_polar_is_drift_too(session, report, ready, dashboard, running) -> None:
    support = dashboard.benefit("priority-support")
    changed = dashboard.update_benefit(support, description="VIP support")

    assert observe(session, report, ready, "benefit.updated", changed, running) == COMPARED
    session.commit()
    [row] = rows(session, ready)
    assert (row.object_type, row.catalog_id, row.field) == ("benefit", "priority-support", "description")
    assert row.message == (
        "The benefit “Priority support” description changed at Polar to “VIP support”; "
        "the catalog says “Priority support”"
    )

    back = dashboard.update_benefit(support, description="Priority support")
    observe(session, report, ready, "benefit.updated", back, running)
    session.commit()
    assert drift.open_drift(session, ready.id) == []


def test_objects_the_platform_does_not_manage_are_not_ours(
    session, report, ready, dashboard, running
) -> None:
    created = dashboard.control.post(
        "/v1/products/",
        json={
            "name": "Hand-made at Polar",
            "organization_id": ready.polar_org_id,
            "recurring_interval": "month",
            "prices": [{"amount_type": "fixed", "price_amount": 500}],
        },
        headers=dashboard.headers,
    )
    created.raise_for_status()
    theirs = dashboard.update_product(created.json()["id"], name="Hand-made, renamed")
    assert observe(session, report, ready, "product.updated", theirs, running) == NOT_OURS

    # Tagged for another workspace (two workspaces may share an organization): not this connection's.
    pro = dashboard.product(dashboard.product_id("pro-monthly"))
    elsewhere = {**pro, "id": created.json()["id"], "name": "Pro+"}
    elsewhere["metadata"] = {**pro["metadata"], "connect_polar_workspace": "another-workspace"}
    assert observe(session, report, ready, "product.updated", elsewhere, running) == NOT_OURS
    assert observe(session, report, ready, "order.updated", pro, running) == NOT_OURS
    assert rows(session, ready) == []


def test_restore_queues_one_run_for_a_burst_and_the_run_puts_the_catalog_back(
    session, settings, ready, dashboard, running, redis_url
) -> None:
    assert settings.polar_drift_policy == "restore"
    pro = dashboard.product_id("pro-monthly")
    renamed = dashboard.update_product(pro, name="Pro+")
    repriced = dashboard.set_price(pro, 3500)

    for data in (renamed, repriced, repriced):  # a burst: each its own event, as processing commits
        assert observe(session, settings, ready, "product.updated", data, running) == COMPARED
        session.commit()

    [run] = drift_runs(session, ready)
    assert run.status == RunStatus.QUEUED
    assert get_queue(redis_connect(redis_url)).count == 1
    assert {r.field for r in drift.open_drift(session, ready.id)} == {"name", "prices"}

    assert provision(run.id, settings)["status"] == RunStatus.SUCCEEDED
    product = dashboard.product(pro)
    assert product["name"] == "Pro (monthly)"
    assert [p["price_amount"] for p in product["prices"] if not p["is_archived"]] == [2900]
    assert drift.open_drift(session, ready.id) == []
    assert all(r.resolved_at is not None for r in rows(session, ready))

    # The run's own write comes back as an event: it matches the catalog, nothing is opened.
    restored = dashboard.last_event("product.updated", pro)
    assert restored["name"] == "Pro (monthly)"
    assert observe(session, settings, ready, "product.updated", restored, running) == COMPARED
    session.commit()
    assert drift.open_drift(session, ready.id) == []
    assert len(drift_runs(session, ready)) == 1


def test_report_records_and_queues_nothing(session, report, ready, dashboard, running, redis_url) -> None:
    archived = dashboard.update_product(dashboard.product_id("pro-yearly"), is_archived=True)

    assert observe(session, report, ready, "product.updated", archived, running) == COMPARED
    session.commit()

    assert [r.message for r in drift.open_drift(session, ready.id)] == [
        "Pro (yearly) was archived at Polar; the catalog offers it"
    ]
    assert drift_runs(session, ready) == []
    assert get_queue(redis_connect(redis_url)).count == 0
    # A run started for another reason still puts the catalog back, and resolves the drift.
    run = start_run(session, ready, trigger="admin").run
    session.commit()
    assert provision(run.id, report)["status"] == RunStatus.SUCCEEDED
    assert dashboard.product(dashboard.product_id("pro-yearly"))["is_archived"] is False
    assert drift.open_drift(session, ready.id) == []


def test_while_a_run_provisions_another_revision_its_own_writes_are_not_drift(
    session, report, ready, dashboard, running, tmp_path
) -> None:
    text = report.plans_file.read_text().replace("amount = 2900", "amount = 3900")
    text = text.replace('interval = "year"', 'interval = "week"')
    (tmp_path / "plans.toml").write_text(text)
    rollout = load_catalog(tmp_path / "plans.toml")
    catalogs.remember(session, rollout)
    pro, yearly = dashboard.product_id("pro-monthly"), dashboard.product_id("pro-yearly")
    repriced = dashboard.set_price(pro, 3900)  # what the rollout's run writes

    # No run under way: the connection's revision is the catalog, so $39 is drift.
    observe(session, report, ready, "product.updated", repriced, running)
    session.commit()
    assert [r.field for r in drift.open_drift(session, ready.id)] == ["prices"]

    run = start_run(session, ready, trigger="rollout").run
    assert runs.claim(session, run.id, timedelta(seconds=15)) is not None
    run.catalog_revision = rollout.revision  # as a claimed run records the revision it provisions
    session.commit()

    # The run writes the new price and archives the yearly product it replaces by a weekly one.
    observe(session, report, ready, "product.updated", repriced, running)
    archived = dashboard.update_product(yearly, is_archived=True)
    assert observe(session, report, ready, "product.updated", archived, running) == COMPARED
    session.commit()
    assert drift.open_drift(session, ready.id) == []


def test_drift_seen_while_a_run_is_under_way_gets_a_run_after_it(
    session, settings, ready, dashboard, running
) -> None:
    pro = dashboard.product_id("pro-monthly")
    observe(session, settings, ready, "product.updated", dashboard.update_product(pro, name="Pro+"), running)
    session.commit()
    [first] = drift_runs(session, ready)
    assert runs.claim(session, first.id, timedelta(seconds=15)) is not None
    session.commit()
    session.refresh(first)

    # After the run listed Polar: the running run is the one a restore gets, none is added.
    observe(session, settings, ready, "product.updated", dashboard.set_price(pro, 3500), running)
    session.commit()
    assert [r.id for r in drift_runs(session, ready)] == [first.id]

    first.status = RunStatus.SUCCEEDED
    drift.after_run(session, settings, first, ready)  # what the run's success calls
    session.commit()

    assert [r.field for r in drift.open_drift(session, ready.id)] == ["prices"]  # the rename was restored
    [follow_up] = [r for r in drift_runs(session, ready) if r.id != first.id]
    assert follow_up.status == RunStatus.QUEUED
    assert provision(follow_up.id, settings)["status"] == RunStatus.SUCCEEDED
    assert drift.open_drift(session, ready.id) == []
    assert [p["price_amount"] for p in dashboard.product(pro)["prices"] if not p["is_archived"]] == [2900]
