"""Usage events through the tenant API against the local Polar: stored and answered 202, ingested by
the real job, counted once by the customer's meter at Polar; bad bodies refused naming the field
with nothing stored; duplicates within a request refused and across requests reported; Redis down
when they arrive and Polar failing when they are sent lose nothing and count nothing twice. Every
answer is held to the OpenAPI document."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator import EmulatorServer
from polar_emulator.domain.store import collection
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.accounts.models import Workspace
from provisioning.background import BILLING_QUEUE
from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.integrations.models import PolarIntegration
from provisioning.usage import tasks
from provisioning.usage.models import UsageEvent, UsageStatus
from tests.app.api.conftest import call
from tests.app.conftest import Accounts, csrf_token, login, make_app
from tests.app.polar.conftest import MakeKey, connect_and_provision, run_jobs

EVENT = "/usage/{external_id}"
# Nothing listens on port 9 (discard): Redis "down" for an app pointed at it.
REDIS_DOWN = "redis://127.0.0.1:9/0"


def _post(client: FlaskClient, key: str, events: Any) -> Any:
    return call(client, "/usage", key, method="POST", json={"events": events})


def _get(client: FlaskClient, key: str, external_id: str) -> Any:
    return call(client, f"/usage/{external_id}", key, template=EVENT)


def _integration(session: Session, workspace_id: str) -> PolarIntegration:
    session.expire_all()
    found = session.scalar(select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id))
    assert found is not None
    return found


def _stored(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(UsageEvent)) or 0)


def _at_polar(emulator: EmulatorServer) -> Counter[str]:
    """How many times the local Polar holds each external id (its deduplication is per organization)."""
    return Counter(e["external_id"] for e in collection(emulator.store, "events").values())


def _ingest_calls(control: httpx.Client) -> list[dict[str, Any]]:
    return [r for r in control.get("/_emulator/requests").json() if r["path"] == "/v1/events/ingest"]


def _customer(control: httpx.Client, integration: PolarIntegration, external_id: str) -> None:
    """A customer of the connection's organization at the local Polar, known by the tenant's id: one
    who bought the pay-as-you-go plan (its meter counts ``api_call`` events)."""
    products = {m.plan_id: m.polar_product_id for m in integration.product_mappings}
    control.post(
        "/_emulator/simulate/purchase",
        json={
            "organization_id": integration.polar_org_id,
            "product_id": products["usage"],
            "external_customer_id": external_id,
        },
    ).raise_for_status()


def _consumed(emulator: EmulatorServer, external_id: str) -> float:
    """What the customer's meters at the local Polar consumed."""
    [customer] = [
        c for c in collection(emulator.store, "customers").values() if c["external_id"] == external_id
    ]
    meters = collection(emulator.store, "customer_meters").values()
    return sum(m["consumed_units"] for m in meters if m["customer_id"] == customer["id"])


def _due_now(session: Session) -> None:
    """The retry's backoff has passed."""
    session.execute(
        update(UsageEvent).where(UsageEvent.status == UsageStatus.PENDING).values(next_attempt_at=utcnow())
    )
    session.commit()


def test_events_are_stored_then_ingested_and_the_customers_meter_counts_them(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    _customer(control, integration, "tenant-user-7")
    stamp = (utcnow() - timedelta(minutes=3)).isoformat()

    answer = _post(
        client,
        key,
        [
            {"name": "api_call", "external_customer_id": "tenant-user-7", "external_id": "call-1"},
            {"name": "api_call", "external_customer_id": "tenant-user-7", "timestamp": stamp},
            {
                "name": "api_call",
                "external_customer_id": "tenant-user-7",
                "metadata": {"route": "/search", "ms": 42, "cached": False},
            },
        ],
    )
    assert answer.status_code == 202, answer.get_json()
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    ids = [e["external_id"] for e in body["events"]]
    assert ids[0] == "call-1" and len(set(ids)) == 3  # the others generated, each its own
    assert [e["status"] for e in body["events"]] == ["accepted"] * 3
    assert _stored(session) == 3  # durable before Polar saw anything
    assert _ingest_calls(control) == []
    pending = _get(client, key, ids[1]).get_json()
    assert pending["status"] == "pending" and pending["ingested_at"] is None
    assert pending["timestamp"].startswith(stamp[:19])

    run_jobs(settings.redis_url, settings)

    for external_id in ids:
        event = _get(client, key, external_id)
        assert event.status_code == 200
        assert event.get_json()["status"] == "ingested"
        assert event.get_json()["ingested_at"] is not None
        assert event.get_json()["external_customer_id"] == "tenant-user-7"
    assert _get(client, key, ids[2]).get_json()["metadata"] == {"route": "/search", "ms": 42, "cached": False}
    assert len(_ingest_calls(control)) == 1  # one batch
    assert _at_polar(emulator) == Counter(dict.fromkeys(ids, 1))
    assert _consumed(emulator, "tenant-user-7") == 3
    # The customer's state names the meter as the plans do (the catalog's id), and by Polar's id.
    state = call(
        client, "/customers/tenant-user-7/state?source=polar", key, template="/customers/{external_id}/state"
    )
    assert state.status_code == 200, state.get_json()
    meters = {m.meter_id: m.polar_meter_id for m in integration.meter_mappings}
    assert [(m["meter"], m["meter_id"], m["consumed_units"]) for m in state.get_json()["meters"]] == [
        ("api-calls", meters["api-calls"], 3)
    ]


def test_duplicates_within_a_request_are_refused_naming_both(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    events = [
        {"name": "api_call", "external_customer_id": "c", "external_id": "a"},
        {"name": "api_call", "external_customer_id": "c", "external_id": "b"},
        {"name": "api_call", "external_customer_id": "c", "external_id": "a"},
    ]
    answer = _post(client, key, events)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert "events[2].external_id" in error["message"] and "events[0]" in error["message"]
    assert _stored(session) == 0
    assert _get(client, key, "b").status_code == 404


def test_an_external_id_stored_already_is_a_duplicate_and_counted_once(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    first = [
        {"name": "api_call", "external_customer_id": "c", "external_id": "a"},
        {"name": "api_call", "external_customer_id": "c", "external_id": "b"},
    ]
    assert _post(client, key, first).get_json()["accepted"] == 2
    second = _post(
        client,
        key,
        [
            {"name": "api_call", "external_customer_id": "c", "external_id": "b", "metadata": {"n": 2}},
            {"name": "api_call", "external_customer_id": "c", "external_id": "c"},
        ],
    )
    assert second.status_code == 202
    assert second.get_json() == {
        "accepted": 1,
        "duplicates": 1,
        "events": [{"external_id": "b", "status": "duplicate"}, {"external_id": "c", "status": "accepted"}],
    }
    assert _get(client, key, "b").get_json()["metadata"] == {}  # the first one stays as it was
    run_jobs(settings.redis_url, settings)

    # The same request sent again (its answer was lost, say) answers 202 the same way and stores nothing.
    retried = _post(client, key, first)
    assert retried.status_code == 202
    assert retried.get_json()["accepted"] == 0 and retried.get_json()["duplicates"] == 2
    assert [e["status"] for e in retried.get_json()["events"]] == ["duplicate", "duplicate"]
    assert _stored(session) == 3
    run_jobs(settings.redis_url, settings)
    assert _at_polar(emulator) == Counter({"a": 1, "b": 1, "c": 1})
    assert len(_ingest_calls(control)) == 1  # one batch; the retried request sent nothing more


def _events(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "api_call", "external_customer_id": "c", **extra} for _ in range(n)]


FAR_FUTURE = "2999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "JSON object"),
        ({}, "events"),
        ({"events": None}, "events"),
        ({"events": {"name": "api_call"}}, "events"),
        ({"events": []}, "events"),
        ({"events": _events(1001)}, "events"),
        ({"events": _events(1), "source": "x"}, "source"),
        ({"events": ["api_call"]}, "events[0]"),
        ({"events": [{"external_customer_id": "c"}]}, "events[0].name"),
        ({"events": [*_events(2), {"name": "", "external_customer_id": "c"}]}, "events[2].name"),
        ({"events": [{"name": "x" * 129, "external_customer_id": "c"}]}, "events[0].name"),
        ({"events": [{"name": "api_call"}]}, "events[0].external_customer_id"),
        ({"events": [{"name": "api_call", "external_customer_id": 42}]}, "events[0].external_customer_id"),
        ({"events": _events(1, customer="c")}, "events[0].customer"),
        ({"events": _events(1, external_id="")}, "events[0].external_id"),
        ({"events": _events(1, external_id=7)}, "events[0].external_id"),
        ({"events": _events(1, external_id="x" * 257)}, "events[0].external_id"),
        ({"events": _events(1, timestamp="yesterday")}, "events[0].timestamp"),
        ({"events": _events(1, timestamp=1733130000)}, "events[0].timestamp"),
        ({"events": _events(1, timestamp="2026-12-02T10:45:00")}, "events[0].timestamp"),  # no zone
        ({"events": _events(1, timestamp=FAR_FUTURE)}, "events[0].timestamp"),
        ({"events": _events(1, metadata=["a"])}, "events[0].metadata"),
        ({"events": _events(1, metadata={"nested": {"a": 1}})}, "events[0].metadata.nested"),
        ({"events": _events(1, metadata={"none": None})}, "events[0].metadata.none"),
        ({"events": _events(1, metadata={f"k{i}": i for i in range(51)})}, "events[0].metadata"),
    ],
)
def test_bad_bodies_are_422_naming_the_field_and_store_nothing(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    control: httpx.Client,
    body: Any,
    field: str,
) -> None:
    key = make_key(ready.id)
    answer = call(client, "/usage", key, method="POST", json=body)
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert _stored(session) == 0


def test_a_body_that_is_not_json_is_400_and_stores_nothing(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    malformed = call(
        client, "/usage", key, method="POST", data='{"events": [', content_type="application/json"
    )
    assert malformed.status_code == 400
    assert malformed.get_json()["error"]["code"] == "bad_request"
    not_json = call(client, "/usage", key, method="POST", data="name=api_call", content_type="text/plain")
    assert not_json.status_code == 400
    assert _stored(session) == 0
    assert call(client, "/usage", method="POST", json={"events": _events(1)}).status_code == 401


def test_a_body_over_8_mb_is_413_and_stores_nothing(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    metadata = {f"k{i}": "x" * 500 for i in range(20)}
    answer = _post(client, key, _events(1000, metadata=metadata))  # about 10 MB
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "request_too_large"
    assert _stored(session) == 0
    assert _post(client, key, _events(1000, metadata={"k": "x" * 500})).status_code == 202


def test_unknown_event_is_404(client: FlaskClient, ready: Workspace, make_key: MakeKey) -> None:
    answer = _get(client, make_key(ready.id), "never-sent")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "unknown_usage_event"


def test_usage_is_accepted_while_billing_is_being_set_up(
    client: FlaskClient,
    connected: Workspace,
    make_key: MakeKey,
    settings: Settings,
    emulator: EmulatorServer,
) -> None:
    key = make_key(connected.id)  # its provisioning run is queued, not run yet
    assert call(client, "/plans", key).status_code == 409
    answer = _post(client, key, _events(1, external_id="early"))
    assert answer.status_code == 202
    run_jobs(settings.redis_url, settings)  # the run, then the usage
    assert _get(client, key, "early").get_json()["status"] == "ingested"
    assert _at_polar(emulator)["early"] == 1


def test_after_a_disconnect_usage_is_409_and_what_was_stored_waits_visible(
    owner_client: FlaskClient,
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    assert _post(client, key, _events(1, external_id="before")).status_code == 202
    token = csrf_token(owner_client, f"/workspaces/{ready.id}/polar")
    gone = owner_client.post(f"/workspaces/{ready.id}/polar/disconnect", data={"csrf_token": token})
    assert gone.status_code == 303

    answer = _post(client, key, _events(1, external_id="after"))
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "not_ready"
    assert "billing page" in answer.get_json()["error"]["message"]
    run_jobs(settings.redis_url, settings)
    before = _get(client, key, "before").get_json()
    assert before["status"] == "pending" and before["attempts"] == 1
    assert "not connected" in before["last_error"]
    assert _get(client, key, "after").status_code == 404
    assert _ingest_calls(control) == []


def test_a_grant_without_events_write_must_be_upgraded_and_stores_nothing(
    client: FlaskClient, ready: Workspace, make_key: MakeKey, session: Session
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    assert integration.scopes is not None and "events:write" in integration.scopes.split()
    integration.scopes = " ".join(s for s in integration.scopes.split() if s != "events:write")
    session.commit()
    answer = _post(client, key, _events(1))
    assert answer.status_code == 409
    error = answer.get_json()["error"]
    assert error["code"] == "permissions_upgrade" and "events:write" in error["message"]
    assert _stored(session) == 0


def test_another_workspaces_key_sees_nothing_of_these_events(
    app: Flask,
    client: FlaskClient,
    ready: Workspace,
    accounts: Accounts,
    make_key: MakeKey,
    settings: Settings,
) -> None:
    other_owner = accounts.user("other@example.com")
    other = accounts.workspace("Other", other_owner)
    other_client = app.test_client()
    login(other_client, other_owner.email)
    connect_and_provision(other_client, other.id, settings)
    mine, theirs = make_key(ready.id), make_key(other.id)

    assert _post(client, mine, _events(1, external_id="mine-1")).status_code == 202
    assert _get(client, mine, "mine-1").status_code == 200
    hidden = _get(client, theirs, "mine-1")
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"] == "unknown_usage_event"
    # Their connection's ids are their own: the same id is a new event there, not a duplicate.
    theirs_too = _post(client, theirs, _events(1, external_id="mine-1"))
    assert theirs_too.get_json()["accepted"] == 1
    assert _get(client, mine, "mine-1").get_json()["status"] == "pending"


def test_redis_down_when_events_arrive_still_stores_them_and_the_sweeper_sends_them(
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    database: Database,
    emulator: EmulatorServer,
    redis_conn: Redis,
) -> None:
    key = make_key(ready.id)
    down = make_app(settings.model_copy(update={"redis_url": REDIS_DOWN}), database).test_client()

    answer = _post(
        down,
        key,
        [
            {"name": "api_call", "external_customer_id": "c", "external_id": "while-down-1"},
            {"name": "api_call", "external_customer_id": "c", "external_id": "while-down-2"},
        ],
    )
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["accepted"] == 2
    assert _stored(session) == 2
    assert Queue(BILLING_QUEUE, connection=redis_conn).count == 0  # Redis was down at the commit

    assert tasks.sweep(database, settings) == [_integration(session, ready.id).id]
    run_jobs(settings.redis_url, settings)
    for external_id in ("while-down-1", "while-down-2"):
        assert _get(down, key, external_id).get_json()["status"] == "ingested"
    assert _at_polar(emulator) == Counter({"while-down-1": 1, "while-down-2": 1})
    assert tasks.sweep(database, settings) == []  # nothing due any more


def test_polar_failing_is_retried_with_backoff_and_counted_once(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    database: Database,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    # Every attempt of the first job fails (the client retries a few times itself).
    control.post(
        "/_emulator/faults", json={"path": "/v1/events/ingest", "status": 503, "count": 10}
    ).raise_for_status()
    assert _post(client, key, _events(1, external_id="flaky")).status_code == 202
    run_jobs(settings.redis_url, settings)

    waiting = _get(client, key, "flaky").get_json()
    assert waiting["status"] == "pending"
    assert waiting["attempts"] == 1
    assert "503" in waiting["last_error"]
    assert waiting["next_attempt_at"] > waiting["created_at"]
    assert tasks.sweep(database, settings) == []  # not due before its backoff
    assert _at_polar(emulator)["flaky"] == 0

    control.delete("/_emulator/faults").raise_for_status()
    _due_now(session)
    assert tasks.sweep(database, settings) == [_integration(session, ready.id).id]
    run_jobs(settings.redis_url, settings)
    done = _get(client, key, "flaky").get_json()
    assert done["status"] == "ingested" and done["last_error"] is None and done["next_attempt_at"] is None
    assert _at_polar(emulator) == Counter({"flaky": 1})


def test_a_batch_polar_took_but_whose_answer_was_lost_is_sent_again_and_counted_once(
    client: FlaskClient,
    ready: Workspace,
    make_key: MakeKey,
    session: Session,
    settings: Settings,
    database: Database,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    key = make_key(ready.id)
    integration = _integration(session, ready.id)
    _customer(control, integration, "c")
    # Polar stores each attempt's events, then the answer is lost (a 502 after the fact).
    control.post(
        "/_emulator/faults",
        json={"path": "/v1/events/ingest", "status": 502, "when": "after", "count": 10},
    ).raise_for_status()
    ids = [e["external_id"] for e in _post(client, key, _events(5)).get_json()["events"]]
    run_jobs(settings.redis_url, settings)
    assert {_get(client, key, x).get_json()["status"] for x in ids} == {"pending"}
    assert len(_ingest_calls(control)) > 1  # sent again already, by the client's own retries
    assert _at_polar(emulator) == Counter(dict.fromkeys(ids, 1))

    control.delete("/_emulator/faults").raise_for_status()
    _due_now(session)
    tasks.sweep(database, settings)
    run_jobs(settings.redis_url, settings)
    assert {_get(client, key, x).get_json()["status"] for x in ids} == {"ingested"}
    assert _at_polar(emulator) == Counter(dict.fromkeys(ids, 1))
    assert _consumed(emulator, "c") == 5
