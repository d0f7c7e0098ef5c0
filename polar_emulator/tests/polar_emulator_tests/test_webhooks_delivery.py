"""Webhook delivery: signatures, payloads, retries, targeting and auto-disable, over real HTTP."""

from __future__ import annotations

import base64
import json

import pytest
import standardwebhooks
from polar.v2026_10.webhooks import validate_event

from polar_emulator import EmulatorServer
from polar_emulator.domain.webhooks.delivery import MAX_ATTEMPTS
from polar_emulator_tests import webhook_fixtures as wf
from polar_emulator_tests.spec import SpecError, spec, validate_schema
from polar_emulator_tests.webhook_fixtures import (
    Hooks,
    deliveries,
    emit,
    events,
    member_data,
    wait_event_done,
)
from polar_emulator_tests.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
receiver, make_endpoint, org_ids, owner_tokens, hooks = wf.FIXTURES


def validate_webhook_payload(event_type: str, payload: dict) -> None:
    """Validate a payload against the spec's ``webhooks`` → post → requestBody schema for its type."""
    body = spec()["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validate_schema(body["$ref"].rsplit("/", 1)[-1], payload)


def test_delivery_is_verified_by_polar_sdk_and_standardwebhooks(hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["member.created"])
    data = member_data()
    [event] = hooks.emit("member.created", data)
    wait_event_done(hooks.control, event["id"])

    [req] = hooks.receiver.received
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "polar.sh webhooks"
    assert req.headers["webhook-id"] == event["id"]
    assert req.headers["webhook-signature"].startswith("v1,")
    assert req.body == event["payload"]

    parsed = validate_event(req.body, req.headers, endpoint["secret"])
    assert parsed.type == "member.created"
    assert parsed.data.id == data["id"]
    assert parsed.api_version == "2026-10"

    wh = standardwebhooks.Webhook(base64.b64encode(endpoint["secret"].encode()).decode())
    assert wh.verify(req.body, req.headers)["data"] == data

    [delivery] = deliveries(hooks.control)
    assert delivery["succeeded"] is True and delivery["http_code"] == 200 and delivery["attempt"] == 1
    assert delivery["webhook_id"] == event["id"] and delivery["type"] == "member.created"
    assert delivery["response"] == "ok" and delivery["duration_ms"] >= 0


def test_a_wrong_secret_fails_both_verifiers(hooks: Hooks) -> None:
    from polar.webhooks import PolarWebhookVerificationError

    hooks.endpoint(["member.created"])
    hooks.deliver()
    [req] = hooks.receiver.received
    wrong = "whsec_" + "x" * 43

    with pytest.raises(PolarWebhookVerificationError):
        validate_event(req.body, req.headers, wrong)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(base64.b64encode(wrong.encode()).decode()).verify(req.body, req.headers)


def test_payload_matches_the_spec_webhook_schema(hooks: Hooks) -> None:
    hooks.endpoint(["member.created", "member.updated"])
    for event_type in ("member.created", "member.updated"):
        [event] = emit(hooks.control, hooks.org_ids["demo-org"], event_type, member_data())
        wait_event_done(hooks.control, event["id"])
    assert len(hooks.receiver.received) == 2
    for req in hooks.receiver.received:
        payload = json.loads(req.body)
        assert set(payload) == {"type", "timestamp", "api_version", "data"}
        validate_webhook_payload(payload["type"], payload)
    # The validator does catch a wrong payload.
    with pytest.raises(SpecError):
        validate_webhook_payload("member.created", {"type": "member.created", "data": {}})


def test_api_version_comes_from_the_endpoint(hooks: Hooks) -> None:
    hooks.endpoint(["member.created"], api_version="2026-04")
    hooks.deliver()
    assert json.loads(hooks.receiver.received[0].body)["api_version"] == "2026-04"
    assert events(hooks.control)[0]["api_version"] == "2026-04"


def test_webhook_id_is_stable_across_retries_and_each_attempt_is_signed_afresh(hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["member.created"])
    hooks.receiver.fail(3)
    [event] = hooks.emit()
    done = wait_event_done(hooks.control, event["id"])

    assert done["succeeded"] is True and done["delivery_count"] == 4 and done["last_http_code"] == 200
    assert [r.headers["webhook-id"] for r in hooks.receiver.received] == [event["id"]] * 4
    assert len({r.body for r in hooks.receiver.received}) == 1
    for req in hooks.receiver.received:
        validate_event(req.body, req.headers, endpoint["secret"])
    log = deliveries(hooks.control)
    assert [(d["attempt"], d["http_code"], d["succeeded"]) for d in log] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert {d["webhook_id"] for d in log} == {event["id"]}


def test_ten_attempts_with_compressed_backoff_then_give_up(emulator: EmulatorServer, hooks: Hooks) -> None:
    hooks.endpoint(["member.created"])
    hooks.receiver.fail_always()
    [event] = hooks.emit()
    done = wait_event_done(hooks.control, event["id"])

    assert done["succeeded"] is False and done["delivery_count"] == MAX_ATTEMPTS == 10
    assert len(hooks.receiver.received) == 10
    assert [d["attempt"] for d in deliveries(hooks.control)] == list(range(1, 11))
    # After failed attempt n Polar waits 2000·2ⁿ ms jittered to [50 %, 100 %]; the tests run 1000x faster.
    scale = emulator.config.webhook_retry_scale
    times = [r.at for r in hooks.receiver.received]
    for n, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
        gap = after - before
        assert gap >= 0.5 * 2000 * 2**n / 1000 * scale * 0.95, (n, gap)
        assert gap <= 2000 * 2**n / 1000 * scale + 0.5, (n, gap)
    # It stays given up: no 11th attempt arrives while a later event is delivered.
    hooks.receiver.always_status = None
    hooks.deliver()
    assert [r.headers["webhook-id"] for r in hooks.receiver.received].count(event["id"]) == 10


@pytest.mark.parametrize("status", [301, 404, 503])
def test_non_2xx_answers_are_failures(hooks: Hooks, status: int) -> None:
    hooks.endpoint(["member.created"])
    hooks.receiver.respond = lambda body: (status, 0.0) if len(hooks.receiver.received) < 1 else (204, 0.0)
    hooks.deliver()
    log = deliveries(hooks.control)
    assert [(d["http_code"], d["succeeded"]) for d in log] == [(status, False), (204, True)]


def test_unreachable_endpoint_records_the_error(hooks: Hooks) -> None:
    hooks.make_endpoint(hooks.org_ids["demo-org"], "http://127.0.0.1:9/nothing-listens", ["member.created"])
    [event] = hooks.emit()
    done = wait_event_done(hooks.control, event["id"])
    assert done["succeeded"] is False
    log = deliveries(hooks.control)
    assert len(log) == 10
    assert all(d["http_code"] is None and d["error"] and d["response"] == d["error"] for d in log)


def test_only_subscribed_types_enabled_endpoints_and_own_org_get_events(hooks: Hooks) -> None:
    other = Receiver().start()
    disabled = Receiver().start()
    try:
        mine = hooks.endpoint(["member.created"])
        hooks.make_endpoint(hooks.org_ids["acme"], other.url, ["member.created", "member.updated"])
        hooks.make_endpoint(
            hooks.org_ids["demo-org"], disabled.url, ["member.created", "member.updated"], enabled=False
        )

        assert hooks.emit("member.updated", member_data()) == []
        [event] = hooks.emit()
        assert event["endpoint_id"] == mine["id"]
        wait_event_done(hooks.control, event["id"])

        assert [json.loads(r.body)["type"] for r in hooks.receiver.received] == ["member.created"]
        assert other.received == [] and disabled.received == []
        # Nothing at all was recorded for the disabled endpoint or the other organization.
        assert [e["endpoint_id"] for e in events(hooks.control)] == [mine["id"]]
    finally:
        other.stop()
        disabled.stop()


def test_events_raised_while_disabled_are_never_delivered(emulator: EmulatorServer, hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["member.created"], enabled=False)
    assert hooks.emit("member.created", member_data(email="a@example.com")) == []
    hooks.set_enabled(endpoint, True)  # re-enabling does not backfill
    hooks.deliver("member.created", member_data(email="b@example.com"))
    assert [json.loads(r.body)["data"]["email"] for r in hooks.receiver.received] == ["b@example.com"]


def test_ten_consecutive_failed_events_disable_the_endpoint(emulator: EmulatorServer, hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["member.created"])
    hooks.receiver.fail_always()
    first = [hooks.emit()[0] for _ in range(9)]
    for event in first:
        assert wait_event_done(hooks.control, event["id"])["succeeded"] is False
    assert hooks.get_endpoint(endpoint)["enabled"] is True  # 9 failed events are not enough

    # The 10th failed event disables the endpoint; a slower one still retrying is skipped.
    slow_marker = "slow@example.com"
    hooks.receiver.respond = lambda body: (500, 0.5) if slow_marker in body else (500, 0.0)
    [tenth] = hooks.emit()
    [slow] = hooks.emit("member.created", member_data(email=slow_marker))
    assert wait_event_done(hooks.control, tenth["id"])["succeeded"] is False
    wait_for(
        lambda: hooks.get_endpoint(endpoint)["enabled"] is False,
        what="the endpoint to be disabled",
    )
    slow_done = wait_event_done(hooks.control, slow["id"])
    assert slow_done["skipped"] is True and slow_done["succeeded"] is None
    assert slow_done["delivery_count"] < 10
    assert hooks.get_endpoint(endpoint)["modified_at"] is not None

    # Disabled: new events are not even recorded.
    before = len(hooks.receiver.received)
    assert hooks.emit() == []
    assert len(events(hooks.control)) == 11
    assert len(hooks.receiver.received) == before


def test_a_success_in_between_keeps_the_endpoint_enabled(hooks: Hooks) -> None:
    endpoint = hooks.endpoint(["member.created"])
    hooks.deliver()
    hooks.receiver.fail_always()
    failed = [hooks.emit()[0] for _ in range(9)]
    for event in failed:
        wait_event_done(hooks.control, event["id"])
    assert hooks.get_endpoint(endpoint)["enabled"] is True


def test_reset_stops_pending_deliveries(emulator: EmulatorServer, hooks: Hooks) -> None:
    hooks.endpoint(["member.created"])
    hooks.receiver.fail_always()
    hooks.emit()
    wait_for(lambda: len(hooks.receiver.received) >= 2, what="a retry")
    state = emulator.store.extra["webhooks"]
    tasks = list(state.tasks)
    assert tasks
    hooks.control.post("/_emulator/reset").raise_for_status()
    wait_for(lambda: all(t.done() for t in tasks), what="delivery tasks to stop")
    assert state.closed
    assert events(hooks.control) == [] and deliveries(hooks.control) == []
    assert len(hooks.receiver.received) < 10
