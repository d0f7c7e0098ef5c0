"""Forwarding a connection's events to the tenant's app over real HTTP: signed so that the secret
shown once verifies them (Standard Webhooks), retried with backoff, in order, once per event;
rotation's overlap; the sweeper's nudges."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from provisioning.background import BILLING_QUEUE
from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.forwarding import service, tasks
from provisioning.forwarding.models import DeliveryStatus, EventForwardDelivery, EventForwardEndpoint
from provisioning.forwarding.signing import new_secret
from provisioning.integrations.models import PolarIntegration
from tests.provisioning.forwarding.support import Received, TenantApp, processed_event

# The schedule owners are told about: 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, then failed.
SCHEDULE = [10, 60, 300, 1800, 7200, 21600]


def _deliveries(session: Session, integration_id: str) -> list[EventForwardDelivery]:
    session.expire_all()
    return list(
        session.scalars(
            select(EventForwardDelivery)
            .where(EventForwardDelivery.integration_id == integration_id)
            .order_by(EventForwardDelivery.created_at)
        )
    )


def _endpoint(session: Session, settings: Settings, integration: PolarIntegration, url: str) -> str:
    """Set the connection's endpoint; returns the secret shown once."""
    saved = service.save_endpoint(session, settings, integration, url)
    session.commit()
    assert saved.created and saved.secret is not None
    return saved.secret


def _record(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    event_type: str = "subscription.active",
):
    event, payload = processed_event(session, integration.id, event_type)
    service.record(session, settings, integration, event.id, event_type, payload)
    session.commit()
    return event, payload


def _make_due(session: Session, integration_id: str) -> None:
    """The clock moves on: whatever waits for its next attempt is due now."""
    session.execute(
        update(EventForwardDelivery)
        .where(
            EventForwardDelivery.integration_id == integration_id,
            EventForwardDelivery.status == DeliveryStatus.PENDING,
        )
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()


def _verify(secret: str, request: Received) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def test_an_event_arrives_signed_so_the_shown_secret_verifies_it(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    secret = _endpoint(session, settings, integration, receiver.url)
    assert secret.startswith("whsec_")
    _, payload = _record(session, settings, integration)

    assert tasks.deliver(integration.id, settings) == 1

    (request,) = receiver.wait_for(1)
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert _verify(secret, request) == payload
    (delivery,) = _deliveries(session, integration.id)
    assert request.headers["webhook-id"] == delivery.id
    assert (
        request.headers["webhook-signature"].startswith("v1,")
        and " " not in request.headers["webhook-signature"]
    )
    assert abs(int(request.headers["webhook-timestamp"]) - utcnow().timestamp()) < 30
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        1,
        200,
    )
    assert delivery.delivered_at is not None and delivery.last_error is None
    # Another secret does not verify it, nor does a changed body.
    with pytest.raises(WebhookVerificationError):
        _verify(new_secret(), request)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"active", b"revoked"), request.headers)


def test_a_500_is_retried_and_the_event_delivered_once(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    secret = _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    receiver.answer_next(500)

    assert tasks.deliver(integration.id, settings) == 0
    (delivery,) = _deliveries(session, integration.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.last_error == "The endpoint answered HTTP 500."
    assert delivery.next_attempt_at is not None
    assert timedelta(seconds=5) < delivery.next_attempt_at - utcnow() <= timedelta(seconds=10)
    # Not due yet: nothing is sent.
    assert tasks.deliver(integration.id, settings) == 0
    assert len(receiver.received) == 1

    _make_due(session, integration.id)
    assert tasks.deliver(integration.id, settings) == 1
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.id  # stable across retries
    assert _verify(secret, second)["type"] == "subscription.active"
    (delivery,) = _deliveries(session, integration.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        2,
        200,
    )
    assert delivery.last_error is None and delivery.next_attempt_at is None

    # Delivered is final: nothing more is sent, even when nudged again.
    _make_due(session, integration.id)
    assert tasks.deliver(integration.id, settings) == 0
    assert len(receiver.received) == 2


def test_failures_back_off_10s_1min_5min_30min_2h_6h_then_the_delivery_fails(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    receiver.answer_next(*[503] * 7)

    waits = []
    for attempt in range(1, 8):
        before = utcnow()
        tasks.deliver(integration.id, settings)
        (delivery,) = _deliveries(session, integration.id)
        assert delivery.attempts == attempt and delivery.last_status_code == 503
        if delivery.next_attempt_at is not None:
            waits.append(round((delivery.next_attempt_at - before).total_seconds()))
        _make_due(session, integration.id)

    assert waits == SCHEDULE
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    assert len(receiver.received) == 7
    tasks.deliver(integration.id, settings)
    assert len(receiver.received) == 7  # failed is final until someone redelivers


def test_a_timeout_and_a_refused_connection_are_failures_saying_so(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration
) -> None:
    _endpoint(session, settings, integration, "http://127.0.0.1:9/hooks")  # port 9 refuses at once
    _record(session, settings, integration)
    tasks.deliver(integration.id, settings)
    (delivery,) = _deliveries(session, integration.id)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code is None and delivery.last_error == "Could not connect to the endpoint."


def test_deliveries_go_in_order_of_creation_and_a_failing_one_holds_the_rest(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    _endpoint(session, settings, integration, receiver.url)
    for event_type in ("subscription.created", "subscription.active", "order.paid"):
        _record(session, settings, integration, event_type)
    receiver.answer_next(500)

    assert tasks.deliver(integration.id, settings) == 0
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["subscription.created"]
    _make_due(session, integration.id)
    assert tasks.deliver(integration.id, settings) == 3

    sent = [json.loads(r.body)["type"] for r in receiver.wait_for(4)]
    assert sent == ["subscription.created", "subscription.created", "subscription.active", "order.paid"]
    rows = _deliveries(session, integration.id)
    assert [r.headers["webhook-id"] for r in receiver.received[1:]] == [d.id for d in rows]
    assert all(d.status == DeliveryStatus.DELIVERED for d in rows)


def test_an_attempt_is_claimed_once_so_two_jobs_never_send_it_together(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    _record(session, settings, integration, "order.paid")

    first = service.claim_next(session, settings, integration.id)
    second = service.claim_next(session, settings, integration.id)

    assert first is not None and first.number == 1
    assert second is None  # the head is taken; the next one waits behind it
    session.rollback()


def test_recording_an_event_twice_queues_it_once(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration, redis_url: str
) -> None:
    _endpoint(session, settings, integration, "https://app.example.com/hooks")
    event, payload = processed_event(session, integration.id)
    service.record(session, settings, integration, event.id, "subscription.active", payload)
    service.record(session, settings, integration, event.id, "subscription.active", payload)
    session.commit()
    service.record(session, settings, integration, event.id, "subscription.active", payload)
    session.commit()

    assert len(_deliveries(session, integration.id)) == 1
    # One nudge: a single delivery job for the connection waits on the billing queue.
    queue = Queue(BILLING_QUEUE, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    jobs = [j for j in queue.get_jobs() if j.func_name == service.DELIVER_TASK]
    assert [list(j.args) for j in jobs] == [[integration.id]]


def test_without_an_enabled_endpoint_nothing_is_recorded(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration, redis_url: str
) -> None:
    _record(session, settings, integration)  # no endpoint
    assert _deliveries(session, integration.id) == []

    _endpoint(session, settings, integration, "https://app.example.com/hooks")
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    service.set_enabled(session, endpoint, False)
    session.commit()
    _record(session, settings, integration)  # disabled
    assert _deliveries(session, integration.id) == []
    queue = Queue(BILLING_QUEUE, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    assert [j for j in queue.get_jobs() if j.func_name == service.DELIVER_TASK] == []


def test_a_disabled_endpoint_holds_queued_deliveries_until_enabled(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    service.set_enabled(session, endpoint, False)
    session.commit()

    assert tasks.deliver(integration.id, settings) == 0
    assert receiver.received == []
    service.set_enabled(session, endpoint, True)
    session.commit()
    assert tasks.deliver(integration.id, settings) == 1
    assert len(receiver.wait_for(1)) == 1


def test_during_the_overlap_both_secrets_verify_then_only_the_new_one(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    old = _endpoint(session, settings, integration, receiver.url)
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    rotated = service.rotate_secret(session, settings, endpoint)
    session.commit()
    new = rotated.secret
    assert new != old and new.startswith("whsec_")
    assert rotated.previous_expires_at is not None
    assert abs((rotated.previous_expires_at - utcnow()) - timedelta(hours=24)) < timedelta(minutes=1)

    _record(session, settings, integration)
    tasks.deliver(integration.id, settings)
    (during,) = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert _verify(old, during) == _verify(new, during)

    # 24 hours later: the previous secret's overlap is over.
    session.execute(
        update(EventForwardEndpoint)
        .where(EventForwardEndpoint.id == endpoint.id)
        .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    _record(session, settings, integration, "order.paid")
    tasks.deliver(integration.id, settings)
    _, after = receiver.wait_for(2)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert _verify(new, after)["type"] == "order.paid"
    with pytest.raises(WebhookVerificationError):
        _verify(old, after)
    # The sweeper drops it from the row.
    tasks.nudge_due(database, settings)
    session.expire_all()
    row = session.get(EventForwardEndpoint, endpoint.id)
    assert row is not None and row.previous_secret is None and row.previous_secret_expires_at is None


def test_secrets_are_stored_encrypted_and_bound_to_their_row(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
    make_owner,
) -> None:
    secret = _endpoint(session, settings, integration, receiver.url)
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    assert secret not in endpoint.secret and secret.removeprefix("whsec_") not in endpoint.secret
    assert service.signing_secrets(settings, endpoint) == [secret]

    # Another connection's endpoint given this one's ciphertext: it cannot sign with it.
    other_owner = make_owner("Other Workspace")
    from provisioning.integrations.repository import add

    other = add(session, other_owner.workspace_id, integration.environment)
    session.flush()
    _endpoint(session, settings, other, receiver.url)
    theirs = service.endpoint_of(session, other.id)
    assert theirs is not None
    theirs.secret = endpoint.secret
    session.commit()
    _record(session, settings, other)
    assert tasks.deliver(other.id, settings) == 0
    assert receiver.received == []
    (delivery,) = _deliveries(session, other.id)
    assert delivery.last_error == service.SECRET_UNREADABLE and delivery.status == DeliveryStatus.PENDING


def test_redeliver_sends_a_delivered_event_again_with_the_same_id(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
) -> None:
    _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    tasks.deliver(integration.id, settings)
    (delivery,) = _deliveries(session, integration.id)

    service.redeliver(session, settings, delivery)
    session.commit()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert tasks.deliver(integration.id, settings) == 1
    first, again = receiver.wait_for(2)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == delivery.id
    assert first.body == again.body


def test_removing_the_endpoint_fails_what_was_not_delivered(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration
) -> None:
    _endpoint(session, settings, integration, "https://app.example.com/hooks")
    _record(session, settings, integration)
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    assert service.remove_endpoint(session, endpoint) == 1
    session.commit()
    (delivery,) = _deliveries(session, integration.id)
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_error == service.REMOVED_NOTE
    assert service.endpoint_of(session, integration.id) is None
    with pytest.raises(service.ForwardingRefused):
        service.redeliver(session, settings, delivery)


def test_the_sweeper_nudges_connections_whose_next_delivery_is_due(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    redis_url: str,
    receiver: TenantApp,
) -> None:
    queue = Queue(BILLING_QUEUE, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    _endpoint(session, settings, integration, receiver.url)
    _record(session, settings, integration)
    receiver.answer_next(500)
    tasks.deliver(integration.id, settings)  # failed once: waits 10 s
    queue.empty()

    assert tasks.nudge_due(database, settings) == 0  # not due yet
    assert queue.count == 0
    _make_due(session, integration.id)
    assert tasks.nudge_due(database, settings) == 1
    assert [list(j.args) for j in queue.get_jobs()] == [[integration.id]]
    # A nudge already waiting: the next sweep adds no second job.
    tasks.nudge_due(database, settings)
    assert queue.count == 1


def test_the_worker_sweep_nudges_due_deliveries(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration, redis_url: str
) -> None:
    import worker

    _endpoint(session, settings, integration, "http://127.0.0.1:9/hooks")
    _record(session, settings, integration)
    queue = Queue(BILLING_QUEUE, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    queue.empty()
    Redis.from_url(redis_url).delete(f"connect-polar:nudge:{service.nudge_key(integration.id)}")

    worker.sweep(database, settings)

    assert [integration.id] in [list(j.args) for j in queue.get_jobs() if j.func_name == service.DELIVER_TASK]


def test_no_secret_is_ever_logged(
    session: Session,
    database: Database,
    settings: Settings,
    integration: PolarIntegration,
    receiver: TenantApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = _endpoint(session, settings, integration, receiver.url)
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    second = service.rotate_secret(session, settings, endpoint).secret
    session.commit()
    _record(session, settings, integration)
    receiver.answer_next(500)
    tasks.deliver(integration.id, settings)
    _make_due(session, integration.id)
    tasks.deliver(integration.id, settings)
    assert len(receiver.wait_for(2)) == 2

    assert "forwarded" in caplog.text  # the job logged its attempts
    for secret in (first, second):
        assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text
    assert "v1," not in caplog.text  # nor a signature
