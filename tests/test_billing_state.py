"""Polar's events become each connection's billing state: the local Polar runs a customer's whole
lifecycle (purchase, past due, recovery, cancel at period end, refund, revoke) and delivers its
events over real HTTP; a real RQ worker processes them; after every step the platform's state of
the customer is the state Polar itself reports. Delivered again, in any order, they converge to
the same state."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from provisioning.billing import repository as billing_repository
from provisioning.billing import service as billing_state
from provisioning.billing.models import BillingCustomer, BillingGrant, BillingOrder, BillingSubscription
from provisioning.billing.tasks import replay
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.tokens import fresh_access_token
from provisioning.polar.client import PolarApi
from provisioning.polar.raw import get_json
from provisioning.runs.jobs import provision
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent
from tests.app.polar.conftest import run_jobs
from tests.committed import connect_committed, environ_of
from tests.test_webhooks_end_to_end import live_app  # noqa: F401  (fixture)

CUSTOMER = "tenant-user-1"
STATE_TABLES = (BillingGrant, BillingOrder, BillingSubscription, BillingCustomer)


def _wait_delivered(control: httpx.Client, endpoint_id: str, *, at_least: int) -> int:
    """Wait, with a deadline, until every event raised for our endpoint was answered 202."""
    deadline = time.monotonic() + 30
    while True:
        events = control.get("/_emulator/webhook-events", params={"endpoint_id": endpoint_id}).json()
        deliveries = control.get("/_emulator/webhook-deliveries", params={"endpoint_id": endpoint_id}).json()
        answered = {d["webhook_id"] for d in deliveries if d.get("http_code") == 202}
        if len(events) >= at_least and all(e["id"] in answered for e in events):
            return len(events)
        assert time.monotonic() < deadline, [(d["type"], d.get("http_code")) for d in deliveries]
        time.sleep(0.05)


def _polar_state(database: Database, settings: Settings, integration_id: str) -> dict[str, Any]:
    """The customer's state as Polar reports it (``GET /v1/customers/external/{id}/state``)."""
    with database.transaction() as session:
        integration = session.get(PolarIntegration, integration_id)
        token = fresh_access_token(session, settings, integration)
        api_url = settings.polar(integration.environment).api_url
    api = PolarApi(api_url, token)
    return get_json(
        api,
        "/v1/customers/external/{external_id}/state",
        external_id=CUSTOMER,
        action="read a customer's state",
        scope="customers:read",
    )


def _comparable_polar(state: dict[str, Any], plans: dict[str, str], meters: dict[str, str]) -> dict[str, Any]:
    return {
        "subscriptions": sorted(
            (s["id"], plans.get(s["product_id"]), s["status"], bool(s["cancel_at_period_end"]))
            for s in state["active_subscriptions"]
        ),
        "grants": sorted((g["id"], g["benefit_id"]) for g in state["granted_benefits"]),
        "meters": sorted(
            (meters.get(m["meter_id"]), m["meter_id"], m["balance"]) for m in state["active_meters"]
        ),
    }


def _comparable_local(state: dict[str, Any] | None) -> dict[str, Any]:
    assert state is not None, "the platform does not know the customer's state"
    assert state["source"] == "local"
    return {
        "subscriptions": sorted(
            (s["id"], s["plan"], s["status"], s["cancel_at_period_end"])
            for s in state["active_subscriptions"]
        ),
        "grants": sorted((g["id"], g["benefit_id"]) for g in state["granted_benefits"]),
        "meters": sorted((m["meter"], m["meter_id"], m["balance"]) for m in state["meters"]),
    }


class Tenant:
    """One provisioned connection, its endpoint at the local Polar, and the worker's processing."""

    def __init__(self, database: Database, settings: Settings, control: httpx.Client) -> None:
        self.database, self.settings, self.control = database, settings, control
        connected = connect_committed(database, settings, name="Billing")
        assert provision(connected.run_id, settings)["status"] == "succeeded"
        self.integration_id = connected.integration_id
        with database.transaction() as session:
            integration = session.get(PolarIntegration, self.integration_id)
            self.org_id = integration.polar_org_id
            self.endpoint_id = integration.webhook_endpoint_id
            self.plans = {m.polar_product_id: m.plan_id for m in integration.product_mappings}
            self.meters = {m.polar_meter_id: m.meter_id for m in integration.meter_mappings}
        self.products = {plan: product for product, plan in self.plans.items()}
        self.raised = 0

    def settle(self) -> None:
        """Every event delivered and processed by a real worker."""
        self.raised = _wait_delivered(self.control, self.endpoint_id, at_least=self.raised + 1)
        run_jobs(self.settings.redis_url, self.settings)

    def local(self) -> dict[str, Any] | None:
        with self.database.transaction() as session:
            integration = session.get(PolarIntegration, self.integration_id)
            return billing_state.customer_state(session, integration, CUSTOMER)

    def assert_matches_polar(self) -> dict[str, Any]:
        local = _comparable_local(self.local())
        polar = _comparable_polar(
            _polar_state(self.database, self.settings, self.integration_id), self.plans, self.meters
        )
        assert local == polar, self.describe()
        return local

    def describe(self) -> str:
        """The connection's events, for a failure's message."""
        return "\n".join(
            f"{e.event_type} {e.status} {e.note or ''} {e.payload['data'].get('status')} {e.payload['data'].get('modified_at')}"
            for e in self.events()
        )

    def assert_converges(self, expected: dict[str, Any], *, seeds: tuple[int, ...]) -> None:
        """Replayed in each seed's shuffled order onto an empty state, the events give ``expected``."""
        for seed in seeds:
            events = self.events()
            random.Random(seed).shuffle(events)
            with self.database.transaction() as session:
                for model in STATE_TABLES:
                    session.execute(sa.delete(model).where(model.integration_id == self.integration_id))
                base = min(e.received_at for e in events)
                for offset, event in enumerate(events):
                    session.execute(
                        sa.update(PolarWebhookEvent)
                        .where(PolarWebhookEvent.id == event.id)
                        .values(received_at=base + timedelta(microseconds=offset + 1))
                    )
            replay(self.database, self.settings, integration_ids=[self.integration_id])
            run_jobs(self.settings.redis_url, self.settings)  # re-reads what the events could not decide
            assert _comparable_local(self.local()) == expected, f"order {seed}:\n{self.describe()}"

    def subscription(self) -> BillingSubscription:
        with self.database.transaction() as session:
            rows = session.scalars(
                sa.select(BillingSubscription).where(
                    BillingSubscription.integration_id == self.integration_id
                )
            ).all()
            assert len(rows) == 1
            session.expunge_all()
            return rows[0]

    def events(self) -> list[PolarWebhookEvent]:
        with self.database.transaction() as session:
            rows = session.scalars(
                sa.select(PolarWebhookEvent)
                .where(PolarWebhookEvent.integration_id == self.integration_id)
                .order_by(PolarWebhookEvent.received_at)
            ).all()
            session.expunge_all()
            return list(rows)


@pytest.fixture
def tenant(
    live_app: tuple[str, Settings],  # noqa: F811
    committing_database: Database,
    control: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> Tenant:
    for name, value in environ_of(live_app[1]).items():  # what the jobs run in this process read
        monkeypatch.setenv(name, value)
    return Tenant(committing_database, live_app[1], control)


def test_a_customers_lifecycle_is_the_state_polar_reports_after_every_step(tenant: Tenant) -> None:
    control = tenant.control
    bought = control.post(
        "/_emulator/simulate/purchase",
        json={
            "organization_id": tenant.org_id,
            "product_id": tenant.products["pro-monthly"],
            "external_customer_id": CUSTOMER,
        },
    )
    assert bought.status_code == 201, bought.text
    tenant.settle()
    state = tenant.assert_matches_polar()
    assert [(plan, status) for _, plan, status, _ in state["subscriptions"]] == [("pro-monthly", "active")]
    assert state["grants"], "the plan's benefits are granted"
    events = tenant.events()
    assert {e.status for e in events} <= {EventStatus.PROCESSED, EventStatus.IGNORED}
    assert all(
        e.raw_body and e.signed_headers and "webhook-signature" not in e.signed_headers for e in events
    )
    with tenant.database.transaction() as session:
        orders = session.scalars(
            sa.select(BillingOrder).where(BillingOrder.integration_id == tenant.integration_id)
        ).all()
        assert [(o.status, o.billing_reason, o.plan_id) for o in orders] == [
            ("paid", "subscription_create", "pro-monthly")
        ]
        order_id = orders[0].polar_id
    subscription_id = tenant.subscription().polar_id

    # Renewal payment fails: past_due drops out of the active subscriptions, benefits are revoked.
    assert control.post(f"/_emulator/subscriptions/{subscription_id}/past-due").status_code == 200
    tenant.settle()
    assert tenant.assert_matches_polar()["subscriptions"] == []
    assert tenant.subscription().status == "past_due"

    # Recovered by a successful renewal.
    renewed = control.post(f"/_emulator/subscriptions/{subscription_id}/renew", json={"payment": "succeeded"})
    assert renewed.status_code == 200, renewed.text
    tenant.settle()
    assert [s[2] for s in tenant.assert_matches_polar()["subscriptions"]] == ["active"]

    # Canceled at period end: still active, flagged to end.
    assert (
        control.post(
            f"/_emulator/subscriptions/{subscription_id}/cancel", json={"at_period_end": True}
        ).status_code
        == 200
    )
    tenant.settle()
    assert [s[3] for s in tenant.assert_matches_polar()["subscriptions"]] == [True]

    # A refund changes the order, never the subscription.
    assert (
        control.post(f"/_emulator/orders/{order_id}/refund", json={"reason": "customer_request"}).status_code
        == 201
    )
    tenant.settle()
    tenant.assert_matches_polar()
    with tenant.database.transaction() as session:
        order = billing_repository.find(session, BillingOrder, tenant.integration_id, order_id)
        assert (
            order is not None and order.status == "refunded" and order.refunded_amount == order.total_amount
        )

    # Every event so far again, in different orders, from an empty state: the same state.
    refunded = tenant.assert_matches_polar()
    assert refunded["subscriptions"] and refunded["grants"]
    tenant.assert_converges(refunded, seeds=(3, 4))

    # Revoked now: nothing active, nothing granted.
    assert (
        control.post(
            f"/_emulator/subscriptions/{subscription_id}/cancel", json={"at_period_end": False}
        ).status_code
        == 200
    )
    tenant.settle()
    final = tenant.assert_matches_polar()
    assert final["subscriptions"] == [] and final["grants"] == []
    assert tenant.subscription().status == "canceled"

    # Every event again, in different orders, from an empty state: the same state.
    tenant.assert_converges(final, seeds=(1, 2))
