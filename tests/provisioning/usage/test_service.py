"""What a usage request must look like (each field checked, named when wrong), how long a failed
event waits before its next attempt, and how Polar's refusal of a batch is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from polar.v2026_10 import outputs
from polar.v2026_10.errors import HTTPValidationError

from provisioning.tenant.billing import InvalidRequest
from provisioning.usage import service
from provisioning.usage.service import MAX_ATTEMPTS, NewEvent, retry_delay, usage_request

NOW = datetime(2026, 12, 2, 10, 45, tzinfo=UTC)


def test_a_request_is_read_field_by_field() -> None:
    events = usage_request(
        {
            "events": [
                {"name": "api_call", "external_customer_id": "u1"},
                {
                    "name": "api_call",
                    "external_customer_id": "u1",
                    "external_id": "e-2",
                    "timestamp": "2026-12-02T12:40:00+02:00",
                    "metadata": {"route": "/x", "ms": 3.5, "ok": True},
                },
                {"name": "api_call", "external_customer_id": "u1", "external_id": None, "timestamp": None},
            ]
        },
        now=NOW,
    )
    assert events[0] == NewEvent("api_call", "u1")
    assert events[1].external_id == "e-2"
    assert events[1].timestamp == datetime(2026, 12, 2, 10, 40, tzinfo=UTC)
    assert events[1].metadata == {"route": "/x", "ms": 3.5, "ok": True}
    assert events[2] == NewEvent("api_call", "u1")


def test_a_timestamp_a_little_ahead_of_our_clock_is_taken_one_far_ahead_is_not() -> None:
    ahead = (NOW + timedelta(minutes=4)).isoformat()
    assert usage_request(
        {"events": [{"name": "n", "external_customer_id": "c", "timestamp": ahead}]}, now=NOW
    )
    later = (NOW + timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
    with pytest.raises(InvalidRequest) as refused:
        usage_request({"events": [{"name": "n", "external_customer_id": "c", "timestamp": later}]}, now=NOW)
    assert refused.value.field == "events[0].timestamp"
    assert "future" in str(refused.value)


def test_a_thousand_events_are_one_request_and_a_thousand_and_one_are_not() -> None:
    one = {"name": "n", "external_customer_id": "c"}
    assert len(usage_request({"events": [one] * 1000}, now=NOW)) == 1000
    with pytest.raises(InvalidRequest) as refused:
        usage_request({"events": [one] * 1001}, now=NOW)
    assert refused.value.field == "events" and "1001" in str(refused.value)


def test_the_same_external_id_twice_names_both_events() -> None:
    events = [{"name": "n", "external_customer_id": "c", "external_id": x} for x in ("a", "b", "c", "b")]
    with pytest.raises(InvalidRequest) as refused:
        usage_request({"events": events}, now=NOW)
    assert refused.value.field == "events[3].external_id"
    assert "events[1].external_id" in str(refused.value) and "'b'" in str(refused.value)


def test_metadata_errors_name_the_event_and_the_key() -> None:
    with pytest.raises(InvalidRequest) as refused:
        usage_request(
            {
                "events": [
                    {"name": "n", "external_customer_id": "c"},
                    {"name": "n", "external_customer_id": "c", "metadata": {"k": [1]}},
                ]
            },
            now=NOW,
        )
    assert refused.value.field == "events[1].metadata.k"
    assert str(refused.value).startswith("events[1].metadata.k must be")


def test_retries_back_off_to_a_few_hours_and_give_up_after_about_a_day() -> None:
    delays = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert delays[:3] == [timedelta(seconds=5), timedelta(seconds=15), timedelta(seconds=45)]
    assert delays == sorted(delays) and max(delays) == timedelta(hours=6)
    assert timedelta(hours=12) < sum(delays, timedelta()) < timedelta(hours=48)


def _refusal(*locs: list[str | int]) -> HTTPValidationError:
    detail = [outputs.ValidationError(loc=list(loc), msg="bad", type="value_error") for loc in locs]
    return HTTPValidationError(422, outputs.HTTPValidationError(detail=detail))


def test_a_refusal_naming_events_fails_those_events_and_one_about_the_organization_the_batch() -> None:
    named = service._rejected(_refusal(["body", "events", 2, "name"], ["body", "events", 5, "metadata", "k"]))
    assert set(named.events) == {2, 5} and named.other is None
    assert "events.2.name" in named.events[2]
    organization = service._rejected(_refusal(["body", "events", 0, "organization_id"]))
    assert organization.events == {} and organization.other is not None
    assert "organization_id" in organization.other
    whole = service._rejected(_refusal(["body", "events"]))
    assert whole.events == {} and whole.other is not None
