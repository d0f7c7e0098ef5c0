"""Polar's webhook deliveries to ``/polar/webhooks/<token>``: signed with the Standard Webhooks
library as Polar does, verified by the app, recorded once per ``webhook-id``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from app.accounts.models import Workspace
from provisioning import db as db_module
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import encrypt_secret
from provisioning.webhooks.models import PolarWebhookEvent
from tests.factories import make_owner

SECRET = "whsec_" + "a1B2c3D4e5" * 4 + "xyz"


@pytest.fixture
def integration(session: Session, settings: Settings, workspace: Workspace) -> PolarIntegration:
    integration = PolarIntegration(
        workspace_id=workspace.id,
        status=IntegrationStatus.READY,
        webhook_endpoint_id=str(uuid.uuid4()),
    )
    integration.webhook_secret = encrypt_secret(settings, integration, "webhook_secret", SECRET)
    session.add(integration)
    session.commit()
    return integration


def signed(
    payload: dict | bytes, *, secret: str = SECRET, msg_id: str | None = None, at: datetime | None = None
):
    """Body and headers as Polar sends them: HMAC keyed by the UTF-8 bytes of the whole secret."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg_id = msg_id or str(uuid.uuid4())
    at = at or datetime.now(UTC)
    signature = Webhook(base64.b64encode(secret.encode()).decode()).sign(msg_id, at, body.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return body, headers


def event(type_: str = "checkout.created") -> dict:
    return {"type": type_, "timestamp": datetime.now(UTC).isoformat(), "api_version": "2026-10", "data": {}}


def post(client: FlaskClient, integration: PolarIntegration, body: bytes, headers: dict):
    return client.post(f"/polar/webhooks/{integration.webhook_path_token}", data=body, headers=headers)


def recorded(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PolarWebhookEvent))


def test_a_signed_delivery_is_recorded_once_per_webhook_id(client, session, integration):
    body, headers = signed(event("checkout.created"))

    first = post(client, integration, body, headers)
    again = post(client, integration, body, headers)  # Polar retries with the same webhook-id

    assert first.status_code == 202 and first.get_json() == {
        "received": "checkout.created",
        "duplicate": False,
    }
    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    rows = session.scalars(select(PolarWebhookEvent)).all()
    assert [(r.webhook_id, r.event_type, r.integration_id) for r in rows] == [
        (headers["webhook-id"], "checkout.created", integration.id)
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda b, h: (
                b,
                {**h, "webhook-signature": signed(b, secret=SECRET + "x")[1]["webhook-signature"]},
            ),
            id="wrong-secret",
        ),
        pytest.param(lambda b, h: (b.replace(b"checkout", b"order"), h), id="tampered-body"),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}), id="unsigned"
        ),
        pytest.param(
            lambda b, h: signed(b, msg_id=h["webhook-id"], at=datetime.now(UTC) - timedelta(minutes=10)),
            id="stale-timestamp",
        ),
    ],
)
def test_a_delivery_that_fails_verification_is_refused_and_changes_nothing(
    client, session, integration, tamper
):
    body, headers = tamper(*signed(event()))

    response = post(client, integration, body, headers)

    assert response.status_code == 403
    assert response.get_json() == {"error": "invalid webhook signature"}
    assert recorded(session) == 0


def test_an_unknown_endpoint_is_a_404(client, session, integration):
    body, headers = signed(event())

    response = client.post("/polar/webhooks/not-an-endpoint", data=body, headers=headers)

    assert response.status_code == 404
    assert recorded(session) == 0


def test_a_signed_body_that_is_not_json_is_a_400(client, session, integration):
    body, headers = signed(b"not json at all")

    response = post(client, integration, body, headers)

    assert response.status_code == 400
    assert recorded(session) == 0


def test_a_signed_payload_the_sdk_cannot_load_is_still_recorded(client, session, integration):
    # polar-sdk 1.0.2 cannot load some correctly signed payloads (customer.state_changed for a
    # customer with an active subscription); the signature is what makes a delivery trustworthy.
    body, headers = signed({"type": "customer.state_changed", "timestamp": "now", "data": {"id": 1}})

    response = post(client, integration, body, headers)

    assert response.status_code == 202
    assert session.scalar(select(PolarWebhookEvent.event_type)) == "customer.state_changed"


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, session, integration):
    body, headers = signed(event())
    big = body + b" " * (1024 * 1024)

    response = post(client, integration, big, headers)

    assert response.status_code == 413
    assert recorded(session) == 0


def test_a_non_utf8_body_without_a_signature_is_refused(client, session, integration):
    # A UTF-16 body with a BOM and no signature headers must not slip past verification.
    body = json.dumps(event()).encode("utf-16")

    response = post(
        client, integration, body, {"webhook-id": str(uuid.uuid4()), "content-type": "application/json"}
    )

    assert response.status_code == 403
    assert recorded(session) == 0


def test_a_disconnected_workspace_answers_gone(client, session, integration):
    integration.status = IntegrationStatus.NOT_CONNECTED
    session.commit()
    body, headers = signed(event())

    response = post(client, integration, body, headers)

    assert response.status_code == 410
    assert recorded(session) == 0


def test_a_webhook_secret_moved_from_another_connection_verifies_nothing(
    client, session, settings, integration, accounts, owner
):
    other = PolarIntegration(
        workspace_id=accounts.workspace("Other", owner).id,
        status=IntegrationStatus.READY,
        webhook_endpoint_id=str(uuid.uuid4()),
        webhook_secret=integration.webhook_secret,  # copied from the first connection's row
    )
    session.add(other)
    session.commit()
    body, headers = signed(event())  # validly signed with the secret the ciphertext holds

    response = post(client, other, body, headers)

    assert response.status_code == 503
    assert "integrity" in response.get_json()["error"]
    assert recorded(session) == 0
    assert post(client, integration, body, headers).status_code == 202  # its own row still works


@pytest.mark.parametrize("length", [128, 129, 10 * 1024])
def test_a_signed_delivery_with_a_long_webhook_id_is_recorded_once(client, session, integration, length):
    long_id = ("msg_" + "x" * length)[:length]
    body, headers = signed(event("order.created"), msg_id=long_id)

    first = post(client, integration, body, headers)
    again = post(client, integration, body, headers)

    assert first.status_code == 202 and first.get_json()["duplicate"] is False
    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    stored = session.scalars(select(PolarWebhookEvent.webhook_id)).all()
    assert len(stored) == 1 and len(stored[0]) <= 128
    assert stored[0] == long_id if length <= 128 else stored[0].startswith("sha256:")


@pytest.mark.parametrize(
    "before",
    ["garbage", "v1,not-base64!", "v1,", "v2,abc=", "v1," + base64.b64encode(b"x" * 32).decode()],
)
def test_a_malformed_or_wrong_signature_entry_before_a_valid_one_does_not_reject_it(
    client, session, integration, before
):
    body, headers = signed(event())
    headers["webhook-signature"] = f"{before} {headers['webhook-signature']}"

    assert post(client, integration, body, headers).status_code == 202
    assert recorded(session) == 1


def test_a_signature_header_with_only_malformed_entries_is_refused(client, session, integration):
    body, headers = signed(event())
    headers["webhook-signature"] = "garbage v1,not-base64! v1,"

    assert post(client, integration, body, headers).status_code == 403
    assert recorded(session) == 0


def committed_integration(database: Database, settings: Settings, name: str) -> str:
    """A ready connection in a database that commits (its own workspace): its URL token."""
    with database.transaction() as session:
        owner = make_owner(session, name, email=f"{name.lower()}@example.test")
    with database.transaction() as session:
        integration = PolarIntegration(
            workspace_id=owner.workspace_id, status=IntegrationStatus.READY, webhook_endpoint_id="ep"
        )
        session.add(integration)
        session.flush()
        integration.webhook_secret = encrypt_secret(settings, integration, "webhook_secret", SECRET)
        return integration.webhook_path_token


def test_the_receiver_records_once_on_the_local_sqlite_default(sqlite_database, settings) -> None:
    from app import create_app

    path = f"/polar/webhooks/{committed_integration(sqlite_database, settings, 'Local')}"
    client = create_app(settings, database=sqlite_database).test_client()
    body, headers = signed(event("order.created"))

    later_body, later_headers = signed(event("order.paid"))  # to the endpoint it now remembers

    first = client.post(path, data=body, headers=headers)
    again = client.post(path, data=body, headers=headers)
    later = client.post(path, data=later_body, headers=later_headers)

    assert first.get_json() == {"received": "order.created", "duplicate": False}
    assert again.get_json()["duplicate"] is True
    assert later.get_json() == {"received": "order.paid", "duplicate": False}
    with sqlite_database.transaction() as session:
        rows = session.scalars(select(PolarWebhookEvent).order_by(PolarWebhookEvent.received_at)).all()
        assert [(r.webhook_id, r.status, r.raw_body, r.payload) for r in rows] == [
            (headers["webhook-id"], "pending", body, json.loads(body)),
            (later_headers["webhook-id"], "pending", later_body, json.loads(later_body)),
        ]


def test_a_delivery_after_the_first_records_the_body_as_its_payload(client, session, integration):
    deliveries = [signed(event("order.created")), signed(event("order.paid"))]

    answers = [post(client, integration, body, headers) for body, headers in deliveries]

    assert [a.status_code for a in answers] == [202, 202]
    rows = session.scalars(select(PolarWebhookEvent).order_by(PolarWebhookEvent.received_at)).all()
    assert [(r.payload, r.raw_body) for r in rows] == [(json.loads(b), b) for b, _ in deliveries]


def test_a_disconnect_after_deliveries_is_seen_by_the_next_one(client, session, integration):
    assert post(client, integration, *signed(event())).status_code == 202
    integration.status = IntegrationStatus.NOT_CONNECTED
    session.commit()

    response = post(client, integration, *signed(event("order.created")))

    assert response.status_code == 410
    assert recorded(session) == 1


def test_a_new_secret_after_deliveries_verifies_the_next_ones(client, session, settings, integration):
    assert post(client, integration, *signed(event())).status_code == 202
    new_secret = "whsec_" + "z9Y8x7W6v5" * 4 + "abc"
    integration.webhook_secret = encrypt_secret(settings, integration, "webhook_secret", new_secret)
    session.commit()

    old = post(client, integration, *signed(event("order.created")))
    new = post(client, integration, *signed(event("order.paid"), secret=new_secret))

    assert (old.status_code, new.status_code) == (403, 202)
    assert session.scalars(
        select(PolarWebhookEvent.event_type).order_by(PolarWebhookEvent.received_at)
    ).all() == [
        "checkout.created",
        "order.paid",
    ]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_signed_body_with_a_number_json_does_not_have_is_a_400(client, session, integration, constant):
    body, headers = signed(b'{"type": "order.created", "data": {"amount": ' + constant + b"}}")

    response = post(client, integration, body, headers)

    assert response.status_code == 400
    assert recorded(session) == 0


def test_concurrent_deliveries_and_retries_are_each_recorded_once(committing_database, settings):
    from concurrent.futures import ThreadPoolExecutor

    from provisioning.webhooks.service import receive

    token = committed_integration(committing_database, settings, "Busy")
    deliveries = [signed(event(f"order.t{n}")) for n in range(40)]
    sent = deliveries * 2  # each also retried by Polar, possibly at the same moment

    with ThreadPoolExecutor(max_workers=8) as pool:
        receipts = list(
            pool.map(
                lambda d: receive(committing_database, settings, path_token=token, body=d[0], headers=d[1]),
                sent,
            )
        )

    firsts = [r for r in receipts if not r.duplicate]
    assert sorted(r.webhook_id for r in firsts) == sorted(h["webhook-id"] for _, h in deliveries)
    with committing_database.transaction() as session:
        rows = session.execute(select(PolarWebhookEvent.webhook_id, PolarWebhookEvent.payload)).all()
    assert sorted(rows) == sorted((h["webhook-id"], json.loads(b)) for b, h in deliveries)


def test_a_delivery_opens_no_browser_session(owner_client, session, integration):
    # A signed-in browser's cookie sent along is not read, and the answer sets none.
    response = post(owner_client, integration, *signed(event()))

    assert response.status_code == 202
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


def test_an_answer_carries_the_request_id_and_an_apis_security_headers(client, session, integration):
    given = post(client, integration, *signed(event()))
    body, headers = signed(event())
    traced = post(client, integration, body, {**headers, "X-Request-Id": "polar-trace-1234"})
    forged = post(client, integration, *signed(event()))

    assert given.status_code == traced.status_code == 202
    assert len(given.headers["X-Request-Id"]) == 32 and int(given.headers["X-Request-Id"], 16) >= 0
    assert given.headers["X-Request-Id"] != forged.headers["X-Request-Id"]
    assert traced.headers["X-Request-Id"] == "polar-trace-1234"
    assert given.headers["Content-Type"] == "application/json"
    assert given.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert given.headers["X-Content-Type-Options"] == "nosniff"
    assert given.headers["Cache-Control"] == "no-store"


def test_another_method_or_path_under_the_prefix_is_answered_as_json(client, session, integration):
    token = integration.webhook_path_token

    listed = client.get(f"/polar/webhooks/{token}")
    nested = client.post(f"/polar/webhooks/{token}/again", data=b"{}")
    empty = client.post("/polar/webhooks/", data=b"{}")

    assert listed.status_code == 405 and listed.headers["Allow"] == "POST"
    assert listed.get_json() == {"error": "deliveries are POSTed"}
    assert nested.status_code == empty.status_code == 404
    assert nested.get_json() == {"error": "no webhook endpoint here"}
    assert recorded(session) == 0


def test_an_unexpected_failure_is_a_500_that_tells_nothing(settings, tmp_path) -> None:
    from app import create_app

    # A database without the platform's tables: the receiver's first statement fails.
    broken = Database(url=f"sqlite:///{tmp_path / 'empty.db'}")
    previous = db_module._database
    try:
        client = create_app(settings, database=broken).test_client()
        response = client.post(
            "/polar/webhooks/some-token", data=b"{}", headers={"X-Request-Id": "trace-5000"}
        )
    finally:
        db_module._database = previous
        assert broken.engine is not None
        broken.engine.dispose()

    assert response.status_code == 500
    assert response.get_json() == {"error": "internal error"}
    assert response.headers["X-Request-Id"] == "trace-5000"
