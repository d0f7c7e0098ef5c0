"""Recorded webhook events processed into the billing state: real events of the local Polar
(taken from its event log after a purchase) delivered to the receiver signed with the connection's
own secret, in the order each test needs, then processed by the job's code or a real RQ worker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import create_app
from app.accounts.models import Workspace
from provisioning.billing.models import BillingCustomer, BillingSubscription
from provisioning.billing.service import summary as billing_summary
from provisioning.billing.tasks import drain, sweep
from provisioning.config import Settings
from provisioning.db import Database, get_database, utcnow
from provisioning.drift.models import CatalogDrift
from provisioning.forwarding import service as forwarding
from provisioning.forwarding.models import EventForwardDelivery
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import decrypt_secret
from provisioning.status import status_snapshot
from provisioning.webhooks import repository as webhooks
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent
from tests.app.api.conftest import call
from tests.app.polar.conftest import MakeKey, run_jobs
from tests.app.polar.test_webhooks import signed

CUSTOMER = "tenant-user-7"
STATE = "/customers/{external_id}/state"


def _integration(session: Session, workspace: Workspace) -> PolarIntegration:
    integration = session.scalar(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace.id)
    )
    assert integration is not None
    return integration


class Polar:
    """The connection's events at the local Polar, and deliveries of them to our receiver."""

    def __init__(
        self,
        client: FlaskClient,
        session: Session,
        settings: Settings,
        control: httpx.Client,
        workspace: Workspace,
    ):
        self.client, self.session, self.settings, self.control = client, session, settings, control
        self.integration = _integration(session, workspace)
        self.secret = decrypt_secret(
            settings, self.integration.id, "webhook_secret", self.integration.webhook_secret
        )
        mappings = {m.plan_id: m.polar_product_id for m in self.integration.product_mappings}
        self.pro = mappings["pro-monthly"]

    def purchase(self) -> None:
        bought = self.control.post(
            "/_emulator/simulate/purchase",
            json={
                "organization_id": self.integration.polar_org_id,
                "product_id": self.pro,
                "external_customer_id": CUSTOMER,
            },
        )
        assert bought.status_code == 201, bought.text

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """The events Polar raised for our endpoint, oldest first: ``{id, type, payload}``."""
        params = {"endpoint_id": self.integration.webhook_endpoint_id, **({"type": type_} if type_ else {})}
        return self.control.get("/_emulator/webhook-events", params=params).json()

    def deliver(
        self, event: dict[str, Any], *, payload: dict[str, Any] | None = None, msg_id: str | None = None
    ):
        body = json.dumps(payload).encode() if payload is not None else event["payload"].encode()
        body, headers = signed(body, secret=self.secret, msg_id=msg_id or event["id"])
        response = self.client.post(
            f"/polar/webhooks/{self.integration.webhook_path_token}", data=body, headers=headers
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        return response

    def process(self) -> dict[str, int]:
        self.session.commit()
        return drain(get_database(), self.settings, self.integration.id)["events"]

    def stored(self, webhook_id: str) -> PolarWebhookEvent:
        self.session.expire_all()
        row = self.session.scalar(select(PolarWebhookEvent).where(PolarWebhookEvent.webhook_id == webhook_id))
        assert row is not None
        return row


@pytest.fixture
def polar(
    client: FlaskClient, session: Session, settings: Settings, control: httpx.Client, ready: Workspace
) -> Polar:
    return Polar(client, session, settings, control, ready)


def _only(events: list[dict[str, Any]], type_: str) -> dict[str, Any]:
    found = [e for e in events if e["type"] == type_]
    assert found, f"no {type_} among {[e['type'] for e in events]}"
    return found[-1]


def test_purchase_events_in_any_order_make_the_customer_active(polar: Polar, session: Session) -> None:
    polar.purchase()
    events = [e for e in polar.events() if not e["type"].startswith("product.")]
    for event in reversed(events):  # newest first: the worst order
        polar.deliver(event)
    counts = polar.process()

    assert counts.get("failed", 0) == 0 and counts.get("flagged", 0) == 0
    session.expire_all()
    subscription = session.scalar(select(BillingSubscription))
    assert subscription is not None
    assert (subscription.plan_id, subscription.status) == ("pro-monthly", "active")
    customer = session.scalar(select(BillingCustomer))
    assert customer is not None and customer.external_id == CUSTOMER and customer.state_at is not None
    assert polar.stored(_only(events, "checkout.created")["id"]).status == EventStatus.IGNORED
    shown = billing_summary(session, polar.integration)  # what the owner's page and the console show
    assert (shown.customers, shown.active_by_plan) == (1, {"pro-monthly": 1})
    assert [(line.customer, line.plan, line.status) for line in shown.latest] == [
        (CUSTOMER, "pro-monthly", "active")
    ]


def test_a_subscription_to_a_product_outside_the_catalog_is_kept_without_a_plan(
    polar: Polar, session: Session
) -> None:
    polar.purchase()
    created = _only(polar.events(), "subscription.created")
    payload = json.loads(created["payload"])
    payload["data"]["product_id"] = payload["data"]["product"]["id"] = "11111111-1111-4111-8111-111111111111"

    polar.deliver(created, payload=payload)
    polar.process()

    stored = polar.stored(created["id"])
    assert stored.status == EventStatus.PROCESSED and "not one of the catalog's" in (stored.note or "")
    subscription = session.scalar(select(BillingSubscription))
    assert subscription is not None and (subscription.plan_id, subscription.status) == (None, "active")


def test_an_older_event_after_a_newer_one_and_the_same_event_twice_change_nothing(
    polar: Polar, session: Session
) -> None:
    polar.purchase()
    created = _only(polar.events(), "subscription.created")
    subscription_id = json.loads(created["payload"])["data"]["id"]
    assert polar.control.post(f"/_emulator/subscriptions/{subscription_id}/past-due").status_code == 200
    past_due = _only(polar.events(), "subscription.past_due")

    polar.deliver(past_due)
    polar.deliver(created)  # delivered late: older than what is stored
    polar.deliver(past_due, msg_id=past_due["id"])  # Polar's retry of the same delivery: one row
    polar.process()

    session.expire_all()
    assert session.scalar(select(BillingSubscription.status)) == "past_due"
    late = polar.stored(created["id"])
    assert late.status == EventStatus.PROCESSED and late.note and late.note.startswith("stale")
    assert (
        len(
            session.scalars(
                select(PolarWebhookEvent).where(PolarWebhookEvent.event_type == "subscription.past_due")
            ).all()
        )
        == 1
    )

    # The same event again (replayed): nothing changes.
    before = session.scalar(select(BillingSubscription))
    assert before is not None
    version, updated_at = before.version, before.status
    session.execute(update(PolarWebhookEvent).values(status=EventStatus.PENDING))
    polar.process()
    session.expire_all()
    after = session.scalar(select(BillingSubscription))
    assert after is not None and (after.version, after.status) == (version, updated_at)


def test_an_event_about_another_organization_is_flagged_and_never_reaches_the_state(
    polar: Polar, session: Session
) -> None:
    polar.purchase()
    created = _only(polar.events(), "subscription.created")
    payload = json.loads(created["payload"])
    payload["data"]["customer"]["organization_id"] = "00000000-0000-4000-8000-000000000000"
    payload["data"]["product"]["organization_id"] = "00000000-0000-4000-8000-000000000000"

    polar.deliver(created, payload=payload)
    polar.process()

    stored = polar.stored(created["id"])
    assert stored.status == EventStatus.FLAGGED
    assert "00000000-0000-4000-8000-000000000000" in (stored.note or "")
    assert session.scalar(select(BillingSubscription)) is None
    assert session.scalar(select(BillingCustomer)) is None


def test_an_unknown_event_type_is_answered_202_kept_and_ignored(polar: Polar) -> None:
    payload = {"type": "organization.updated", "timestamp": utcnow().isoformat(), "data": {"id": "x"}}
    response = polar.deliver({"id": "evt-unknown-type"}, payload=payload)
    assert response.get_json()["received"] == "organization.updated"
    polar.process()
    stored = polar.stored("evt-unknown-type")
    assert stored.status == EventStatus.IGNORED and "unknown event type" in (stored.note or "")
    assert stored.raw_body == json.dumps(payload).encode()
    assert set(stored.signed_headers or {}) == {"webhook-id", "webhook-timestamp"}


def test_a_processing_failure_is_retried_with_backoff_then_failed_and_counted(
    polar: Polar, session: Session
) -> None:
    polar.purchase()
    created = _only(polar.events(), "customer.created")
    payload = json.loads(created["payload"])
    payload["data"]["external_id"] = "x" * 300  # longer than the column: the database refuses it

    polar.deliver(created, payload=payload)
    polar.process()

    stored = polar.stored(created["id"])
    assert stored.status == EventStatus.PENDING and stored.attempts == 1
    assert stored.next_attempt_at is not None
    assert timedelta(seconds=3) < stored.next_attempt_at - utcnow() <= timedelta(seconds=5)
    assert "processing failed" in (stored.note or "")
    assert webhooks.failing_count(session, polar.integration.id) == 1
    assert polar.process() == {}  # not due yet

    for _ in range(10):  # every retry due now: the event fails for good after the last one
        session.execute(
            update(PolarWebhookEvent)
            .where(PolarWebhookEvent.status == EventStatus.PENDING)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        polar.process()
    stored = polar.stored(created["id"])
    assert stored.status == EventStatus.FAILED and stored.next_attempt_at is None and stored.attempts == 7
    assert webhooks.failing_count(session, polar.integration.id) == 1
    shown = status_snapshot(session, polar.integration.workspace_id)["webhooks"]  # the owner's page
    assert (shown["failing"], shown["received"]) == (1, 1)
    assert session.scalar(select(BillingCustomer)) is None


def test_a_state_that_drops_an_active_subscription_has_it_read_again_from_polar(
    polar: Polar, session: Session, settings: Settings
) -> None:
    polar.purchase()
    for event in polar.events():
        polar.deliver(event)
    polar.process()
    subscription = session.scalar(select(BillingSubscription))
    assert subscription is not None and subscription.status == "active"
    assert polar.control.post(f"/_emulator/subscriptions/{subscription.polar_id}/past-due").status_code == 200
    polar.control.delete("/_emulator/requests")

    # Only the debounced state arrives (the subscription's own events are late): it no longer
    # lists the subscription, and nothing here says why.
    polar.deliver(_only(polar.events(), "customer.state_changed"))
    polar.process()
    session.expire_all()
    assert session.scalar(select(BillingSubscription.status)) == "active"
    run_jobs(settings.redis_url, settings)

    session.expire_all()
    assert session.scalar(select(BillingSubscription.status)) == "past_due"
    reads = [r for r in polar.control.get("/_emulator/requests").json() if r["method"] == "GET"]
    assert [r["path"] for r in reads] == [f"/v1/subscriptions/{subscription.polar_id}"]


def test_an_event_whose_nudge_was_lost_is_processed_after_the_sweeper_nudges(
    polar: Polar, session: Session, settings: Settings, database: Database
) -> None:
    # Redis is unreachable when the delivery arrives: it is answered 202 and kept all the same.
    offline = create_app(
        settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}), database=database
    )
    polar.purchase()
    created = _only(polar.events(), "customer.created")
    body, headers = signed(created["payload"].encode(), secret=polar.secret, msg_id=created["id"])
    response = offline.test_client().post(
        f"/polar/webhooks/{polar.integration.webhook_path_token}", data=body, headers=headers
    )
    assert response.status_code == 202
    run_jobs(settings.redis_url, settings)
    assert polar.stored(created["id"]).status == EventStatus.PENDING  # no job knew of it

    assert sweep(database, settings) == []  # not late yet: a nudge may still be on its way
    session.execute(update(PolarWebhookEvent).values(received_at=utcnow() - timedelta(seconds=10)))
    session.commit()
    assert sweep(database, settings) == [polar.integration.id]
    run_jobs(settings.redis_url, settings)
    assert polar.stored(created["id"]).status == EventStatus.PROCESSED


def test_flask_webhooks_replay_rebuilds_the_state_and_is_audited(
    polar: Polar, session: Session, app, ready: Workspace
) -> None:
    polar.purchase()
    for event in polar.events():
        polar.deliver(event)
    polar.process()
    session.execute(BillingSubscription.__table__.delete())
    session.commit()

    runner = app.test_cli_runner()
    result = runner.invoke(args=["webhooks", "replay", "--workspace", ready.id, "--reason", "rebuild"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("replayed ") and "processed" in result.output
    session.expire_all()
    assert session.scalar(select(BillingSubscription.status)) == "active"

    refused = runner.invoke(args=["webhooks", "replay"])
    assert refused.exit_code != 0 and "--workspace" in refused.output
    unknown = runner.invoke(args=["webhooks", "replay", "--event", "no-such-event"])
    assert unknown.exit_code != 0 and "no stored event matches" in unknown.output
    bad = runner.invoke(args=["webhooks", "replay", "--since", "yesterday"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output


def test_customer_state_is_answered_from_local_state_without_calling_polar(
    polar: Polar, client: FlaskClient, ready: Workspace, make_key: MakeKey
) -> None:
    key = make_key(ready.id)
    polar.purchase()
    unknown = call(client, f"/customers/{CUSTOMER}/state", key, template=STATE)
    assert unknown.status_code == 200 and unknown.get_json()["source"] == "polar"
    for event in polar.events():
        polar.deliver(event)
    polar.process()
    polar.control.delete("/_emulator/requests")

    answer = call(client, f"/customers/{CUSTOMER}/state", key, template=STATE)

    assert answer.status_code == 200
    state = answer.get_json()
    assert state["source"] == "local"
    assert [(s["plan"], s["status"]) for s in state["active_subscriptions"]] == [("pro-monthly", "active")]
    assert polar.control.get("/_emulator/requests").json() == []

    # Asked for Polar's (a tenant's app just back from a checkout): read from Polar all the same.
    fresh = call(client, f"/customers/{CUSTOMER}/state?source=polar", key, template=STATE)
    assert fresh.status_code == 200 and fresh.get_json()["source"] == "polar"
    assert fresh.get_json()["active_subscriptions"] == state["active_subscriptions"]
    reads = [r["path"] for r in polar.control.get("/_emulator/requests").json()]
    assert reads == [f"/v1/customers/external/{CUSTOMER}/state"]
    bad = call(client, f"/customers/{CUSTOMER}/state?source=cache", key, template=STATE)
    assert bad.status_code == 400 and "source must be" in bad.get_json()["error"]["message"]


def test_each_event_that_changed_the_state_is_queued_once_for_the_tenants_app_normalized(
    polar: Polar, session: Session, settings: Settings
) -> None:
    saved = forwarding.save_endpoint(
        session, settings, polar.integration, "https://app.tenant.example/billing-events"
    )
    assert saved.secret
    polar.purchase()
    events = polar.events()
    for event in events:
        polar.deliver(event)
    polar.process()

    queued = session.scalars(select(EventForwardDelivery).order_by(EventForwardDelivery.created_at)).all()
    kinds = {d.event_type for d in queued}
    assert {"subscription.active", "order.paid", "customer.state_changed"} <= kinds
    assert not kinds & {"checkout.created", "checkout.updated", "product.updated"}  # not billing state
    active = next(d for d in queued if d.event_type == "subscription.active")
    assert {k: active.payload[k] for k in ("type", "customer_external_id", "plan", "status")} == {
        "type": "subscription.active",
        "customer_external_id": CUSTOMER,
        "plan": "pro-monthly",
        "status": "active",
    }
    stored = polar.stored(_only(events, "subscription.active")["id"])
    assert active.payload["id"] == stored.id and active.payload["data"] == stored.payload["data"]

    # Replayed, the events change nothing and nothing is forwarded twice.
    session.execute(update(PolarWebhookEvent).values(status=EventStatus.PENDING))
    polar.process()
    assert len(session.scalars(select(EventForwardDelivery)).all()) == len(queued)


def test_a_managed_product_changed_at_polar_is_taken_as_drift_and_others_are_ignored(
    polar: Polar, session: Session
) -> None:
    updates = polar.events("product.updated")  # provisioning attached the benefits to our products
    assert updates
    for event in updates:
        polar.deliver(event)
    foreign = json.loads(updates[0]["payload"])
    foreign["data"]["id"] = "22222222-2222-4222-8222-222222222222"
    foreign["data"]["metadata"] = {}
    polar.deliver({"id": "evt-foreign-product"}, payload=foreign)
    polar.process()

    assert {polar.stored(e["id"]).status for e in updates} == {EventStatus.PROCESSED}
    assert polar.stored("evt-foreign-product").status == EventStatus.IGNORED

    # An older version of a product, delivered after a newer one: not compared again.
    older = json.loads(updates[-1]["payload"])
    modified = datetime.fromisoformat(older["data"]["modified_at"].replace("Z", "+00:00"))
    older["data"]["modified_at"] = (modified - timedelta(hours=1)).isoformat()
    older["data"]["name"] = "Renamed an hour ago"
    polar.deliver({"id": "evt-older-product"}, payload=older)
    polar.process()
    stale = polar.stored("evt-older-product")
    assert (stale.status, stale.note) == (
        EventStatus.PROCESSED,
        "stale: a newer version of this product is stored",
    )
    assert session.scalars(select(CatalogDrift).filter_by(integration_id=polar.integration.id)).all() == []


def test_the_owners_page_shows_customers_subscriptions_and_failing_events(
    polar: Polar, owner_client: FlaskClient, ready: Workspace, session: Session
) -> None:
    empty = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)
    assert "No customers yet" in empty and 'id="events-failing"' not in empty
    polar.purchase()
    for event in polar.events():
        polar.deliver(event)
    created = _only(polar.events(), "customer.created")
    broken = json.loads(created["payload"])
    broken["data"]["external_id"] = "y" * 300  # the database refuses it: a failing event
    polar.deliver({"id": "evt-failing"}, payload=broken)
    polar.process()

    page = owner_client.get(f"/workspaces/{ready.id}/polar").get_data(as_text=True)

    assert "1 customer, 1 active subscription: 1 Pro (monthly)." in " ".join(page.split())
    row = page[page.index('id="subscriptions"') :]
    assert f"<code>{CUSTOMER}</code>" in row and "Pro (monthly)" in row and "badge-active" in row
    assert "1 of Polar's events could not be processed yet" in " ".join(page.split())
