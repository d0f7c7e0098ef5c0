"""Webhook delivery: signatures, payloads, retries, targeting and auto-disable, over real HTTP."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import standardwebhooks
from polar.v2026_10.webhooks import validate_event

from polar_emulator import EmulatorServer
from polar_emulator.webhooks.delivery import MAX_ATTEMPTS
from tests.polar_emulator import webhook_fixtures as wf
from tests.polar_emulator.spec import SpecError, spec, validate_schema
from tests.polar_emulator.webhook_fixtures import (
    MakeEndpoint,
    deliveries,
    emit,
    events,
    get_endpoint,
    member_data,
    set_enabled,
    wait_event_done,
)
from tests.polar_emulator.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
receiver, make_endpoint, org_ids, owner_tokens = wf.receiver, wf.make_endpoint, wf.org_ids, wf.owner_tokens


def validate_webhook_payload(event_type: str, payload: dict) -> None:
    """Validate a payload against the spec's ``webhooks`` → post → requestBody schema for its type."""
    body = spec()["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validate_schema(body["$ref"].rsplit("/", 1)[-1], payload)


def test_delivery_is_verified_by_polar_sdk_and_standardwebhooks(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    endpoint = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    data = member_data()
    [event] = emit(control, org_ids["demo-org"], "member.created", data)
    wait_event_done(control, event["id"])

    [req] = receiver.received
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

    [delivery] = deliveries(control)
    assert delivery["succeeded"] is True and delivery["http_code"] == 200 and delivery["attempt"] == 1
    assert delivery["webhook_id"] == event["id"] and delivery["type"] == "member.created"
    assert delivery["response"] == "ok" and delivery["duration_ms"] >= 0


def test_a_wrong_secret_fails_both_verifiers(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    from polar.webhooks import PolarWebhookVerificationError

    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_event_done(control, event["id"])
    [req] = receiver.received
    wrong = "whsec_" + "x" * 43

    with pytest.raises(PolarWebhookVerificationError):
        validate_event(req.body, req.headers, wrong)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(base64.b64encode(wrong.encode()).decode()).verify(req.body, req.headers)


def test_payload_matches_the_spec_webhook_schema(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created", "member.updated"])
    for event_type in ("member.created", "member.updated"):
        [event] = emit(control, org_ids["demo-org"], event_type, member_data())
        wait_event_done(control, event["id"])
    assert len(receiver.received) == 2
    for req in receiver.received:
        payload = json.loads(req.body)
        assert set(payload) == {"type", "timestamp", "api_version", "data"}
        validate_webhook_payload(payload["type"], payload)
    # The validator does catch a wrong payload.
    with pytest.raises(SpecError):
        validate_webhook_payload("member.created", {"type": "member.created", "data": {}})


def test_api_version_comes_from_the_endpoint(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"], api_version="2026-04")
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_event_done(control, event["id"])
    assert json.loads(receiver.received[0].body)["api_version"] == "2026-04"
    assert events(control)[0]["api_version"] == "2026-04"


def test_webhook_id_is_stable_across_retries_and_each_attempt_is_signed_afresh(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    endpoint = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    receiver.fail(3)
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    done = wait_event_done(control, event["id"])

    assert done["succeeded"] is True and done["delivery_count"] == 4 and done["last_http_code"] == 200
    assert [r.headers["webhook-id"] for r in receiver.received] == [event["id"]] * 4
    assert len({r.body for r in receiver.received}) == 1
    for req in receiver.received:
        validate_event(req.body, req.headers, endpoint["secret"])
    log = deliveries(control)
    assert [(d["attempt"], d["http_code"], d["succeeded"]) for d in log] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 200, True),
    ]
    assert {d["webhook_id"] for d in log} == {event["id"]}


def test_ten_attempts_with_compressed_backoff_then_give_up(
    emulator: EmulatorServer,
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
) -> None:
    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    receiver.fail_always()
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    done = wait_event_done(control, event["id"])

    assert done["succeeded"] is False and done["delivery_count"] == MAX_ATTEMPTS == 10
    assert len(receiver.received) == 10
    assert [d["attempt"] for d in deliveries(control)] == list(range(1, 11))
    # After failed attempt n Polar waits 2000·2ⁿ ms jittered to [50 %, 100 %]; the tests run 1000x faster.
    scale = emulator.config.webhook_retry_scale
    times = [r.at for r in receiver.received]
    for n, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
        gap = after - before
        assert gap >= 0.5 * 2000 * 2**n / 1000 * scale * 0.95, (n, gap)
        assert gap <= 2000 * 2**n / 1000 * scale + 0.5, (n, gap)
    # It stays given up: no 11th attempt arrives while a later event is delivered.
    receiver.always_status = None
    [later] = emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_event_done(control, later["id"])
    assert [r.headers["webhook-id"] for r in receiver.received].count(event["id"]) == 10


@pytest.mark.parametrize("status", [301, 404, 503])
def test_non_2xx_answers_are_failures(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    status: int,
) -> None:
    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    receiver.respond = lambda body: (status, 0.0) if len(receiver.received) < 1 else (204, 0.0)
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_event_done(control, event["id"])
    log = deliveries(control)
    assert [(d["http_code"], d["succeeded"]) for d in log] == [(status, False), (204, True)]


def test_unreachable_endpoint_records_the_error(
    control: httpx.Client, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    make_endpoint(org_ids["demo-org"], "http://127.0.0.1:9/nothing-listens", ["member.created"])
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
    done = wait_event_done(control, event["id"])
    assert done["succeeded"] is False
    log = deliveries(control)
    assert len(log) == 10
    assert all(d["http_code"] is None and d["error"] and d["response"] == d["error"] for d in log)


def test_only_subscribed_types_enabled_endpoints_and_own_org_get_events(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    other = Receiver().start()
    disabled = Receiver().start()
    try:
        mine = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
        make_endpoint(org_ids["acme"], other.url, ["member.created", "member.updated"])
        make_endpoint(org_ids["demo-org"], disabled.url, ["member.created", "member.updated"], enabled=False)

        assert emit(control, org_ids["demo-org"], "member.updated", member_data()) == []
        [event] = emit(control, org_ids["demo-org"], "member.created", member_data())
        assert event["endpoint_id"] == mine["id"]
        wait_event_done(control, event["id"])

        assert [json.loads(r.body)["type"] for r in receiver.received] == ["member.created"]
        assert other.received == [] and disabled.received == []
        # Nothing at all was recorded for the disabled endpoint or the other organization.
        assert [e["endpoint_id"] for e in events(control)] == [mine["id"]]
    finally:
        other.stop()
        disabled.stop()


def test_events_raised_while_disabled_are_never_delivered(
    emulator: EmulatorServer,
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    endpoint = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"], enabled=False)
    assert emit(control, org_ids["demo-org"], "member.created", member_data(email="a@example.com")) == []
    set_enabled(control, owner_tokens, endpoint, True)  # re-enabling does not backfill
    [event] = emit(control, org_ids["demo-org"], "member.created", member_data(email="b@example.com"))
    wait_event_done(control, event["id"])
    assert [json.loads(r.body)["data"]["email"] for r in receiver.received] == ["b@example.com"]


def test_ten_consecutive_failed_events_disable_the_endpoint(
    emulator: EmulatorServer,
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    endpoint = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    receiver.fail_always()
    first = [emit(control, org_ids["demo-org"], "member.created", member_data())[0] for _ in range(9)]
    for event in first:
        assert wait_event_done(control, event["id"])["succeeded"] is False
    assert get_endpoint(control, owner_tokens, endpoint)["enabled"] is True  # 9 failed events are not enough

    # The 10th failed event disables the endpoint; a slower one still retrying is skipped.
    slow_marker = "slow@example.com"
    receiver.respond = lambda body: (500, 0.5) if slow_marker in body else (500, 0.0)
    [tenth] = emit(control, org_ids["demo-org"], "member.created", member_data())
    [slow] = emit(control, org_ids["demo-org"], "member.created", member_data(email=slow_marker))
    assert wait_event_done(control, tenth["id"])["succeeded"] is False
    wait_for(
        lambda: get_endpoint(control, owner_tokens, endpoint)["enabled"] is False,
        what="the endpoint to be disabled",
    )
    slow_done = wait_event_done(control, slow["id"])
    assert slow_done["skipped"] is True and slow_done["succeeded"] is None
    assert slow_done["delivery_count"] < 10
    assert get_endpoint(control, owner_tokens, endpoint)["modified_at"] is not None

    # Disabled: new events are not even recorded.
    before = len(receiver.received)
    assert emit(control, org_ids["demo-org"], "member.created", member_data()) == []
    assert len(events(control)) == 11
    assert len(receiver.received) == before


def test_a_success_in_between_keeps_the_endpoint_enabled(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    endpoint = make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    [ok] = emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_event_done(control, ok["id"])
    receiver.fail_always()
    failed = [emit(control, org_ids["demo-org"], "member.created", member_data())[0] for _ in range(9)]
    for event in failed:
        wait_event_done(control, event["id"])
    assert get_endpoint(control, owner_tokens, endpoint)["enabled"] is True


def test_reset_stops_pending_deliveries(
    emulator: EmulatorServer,
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
) -> None:
    make_endpoint(org_ids["demo-org"], receiver.url, ["member.created"])
    receiver.fail_always()
    emit(control, org_ids["demo-org"], "member.created", member_data())
    wait_for(lambda: len(receiver.received) >= 2, what="a retry")
    state = emulator.store.extra["webhooks"]
    tasks = list(state.tasks)
    assert tasks
    control.post("/_emulator/reset").raise_for_status()
    wait_for(lambda: all(t.done() for t in tasks), what="delivery tasks to stop")
    assert state.closed
    assert events(control) == [] and deliveries(control) == []
    assert len(receiver.received) < 10
