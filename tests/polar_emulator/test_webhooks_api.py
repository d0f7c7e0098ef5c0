"""Polar's webhook delivery log and redelivery API, and the emulator's webhook control routes."""

from __future__ import annotations

import httpx
from polar.v2026_10 import Polar

from polar_emulator import EmulatorServer
from tests.polar_emulator import webhook_fixtures as wf
from tests.polar_emulator.conftest import IssueToken
from tests.polar_emulator.spec import validate_response
from tests.polar_emulator.webhook_fixtures import MakeEndpoint, deliveries, emit, member_data, wait_event_done
from tests.polar_emulator.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
receiver, make_endpoint, org_ids, owner_tokens = wf.receiver, wf.make_endpoint, wf.org_ids, wf.owner_tokens


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Polar-Version": "2026-10"}


def _deliver_some(control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org: str) -> dict:
    """One endpoint with a failed-then-succeeded member.created and a succeeded member.updated."""
    endpoint = make_endpoint(org, receiver.url, ["member.created", "member.updated"])
    receiver.fail(1)
    [created] = emit(control, org, "member.created", member_data())
    wait_event_done(control, created["id"])
    [updated] = emit(control, org, "member.updated", member_data())
    wait_event_done(control, updated["id"])
    return endpoint


def test_list_deliveries_matches_the_spec_and_the_sdk(
    emulator: EmulatorServer,
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    org = org_ids["demo-org"]
    endpoint = _deliver_some(control, receiver, make_endpoint, org)
    response = control.get("/v1/webhooks/deliveries", headers=_auth(owner_tokens[org]))
    assert response.status_code == 200, response.text
    body = response.json()
    validate_response("GET", "/v1/webhooks/deliveries", 200, body)
    assert body["pagination"] == {"total_count": 3, "max_page": 1}
    # Newest first.
    assert [(d["webhook_event"]["type"], d["succeeded"]) for d in body["items"]] == [
        ("member.updated", True),
        ("member.created", True),
        ("member.created", False),
    ]
    first = body["items"][-1]
    assert first["http_code"] == 500 and first["response"] == "nope"
    assert first["webhook_event"]["api_version"] == "2026-10"
    assert first["webhook_event"]["succeeded"] is True and first["webhook_event"]["last_http_code"] == 200

    with Polar(owner_tokens[org], base_url=emulator.url) as polar:
        listed = polar.webhooks.list_webhook_deliveries(endpoint_id=endpoint["id"], limit=100)
    assert len(listed.items) == 3
    assert listed.items[0].webhook_event.api_version == "2026-10"


def test_list_deliveries_filters(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    org = org_ids["demo-org"]
    endpoint = _deliver_some(control, receiver, make_endpoint, org)
    auth = _auth(owner_tokens[org])

    def count(**params: object) -> int:
        response = control.get("/v1/webhooks/deliveries", params=params, headers=auth)
        assert response.status_code == 200, response.text
        return response.json()["pagination"]["total_count"]

    assert count(endpoint_id=endpoint["id"]) == 3
    assert count(endpoint_id="00000000-0000-4000-8000-000000000000") == 0
    assert count(succeeded="false") == 1
    assert count(succeeded="true") == 2
    assert count(event_type="member.updated") == 1
    assert count(event_type=["member.updated", "member.created"]) == 3
    assert count(http_code_class="5xx") == 1
    assert count(http_code_class="2xx") == 2
    assert count(start_timestamp="2100-01-01T00:00:00Z") == 0
    assert count(end_timestamp="2100-01-01T00:00:00Z") == 3
    page = control.get("/v1/webhooks/deliveries", params={"limit": 2, "page": 2}, headers=auth).json()
    assert len(page["items"]) == 1 and page["pagination"] == {"total_count": 3, "max_page": 2}
    assert control.get("/v1/webhooks/deliveries", params={"limit": 0}, headers=auth).status_code == 422


def test_list_deliveries_needs_a_webhooks_scope_and_hides_other_orgs(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
    issue_token: IssueToken,
) -> None:
    _deliver_some(control, receiver, make_endpoint, org_ids["demo-org"])
    no_scope = issue_token("demo@polar.local", scope="products:read")
    assert control.get("/v1/webhooks/deliveries", headers=_auth(no_scope)).status_code == 403
    assert control.get("/v1/webhooks/deliveries").status_code == 401
    read_only = issue_token("demo@polar.local", scope="webhooks:read")
    assert (
        control.get("/v1/webhooks/deliveries", headers=_auth(read_only)).json()["pagination"]["total_count"]
        == 3
    )
    other = control.get("/v1/webhooks/deliveries", headers=_auth(owner_tokens[org_ids["acme"]])).json()
    assert other["items"] == []


def test_redeliver_sends_the_same_event_again(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
    issue_token: IssueToken,
) -> None:
    org = org_ids["demo-org"]
    endpoint = make_endpoint(org, receiver.url, ["member.created"])
    [event] = emit(control, org, "member.created", member_data())
    wait_event_done(control, event["id"])

    read_only = issue_token("demo@polar.local", scope="webhooks:read")
    url = f"/v1/webhooks/events/{event['id']}/redeliver"
    assert control.post(url, headers=_auth(read_only)).status_code == 403
    assert control.post(url, headers=_auth(owner_tokens[org_ids["acme"]])).status_code == 404
    missing = "/v1/webhooks/events/00000000-0000-4000-8000-000000000000/redeliver"
    assert control.post(missing, headers=_auth(owner_tokens[org])).status_code == 404

    response = control.post(url, headers=_auth(owner_tokens[org]))
    assert response.status_code == 202
    wait_for(lambda: len(deliveries(control, endpoint_id=endpoint["id"])) == 2, what="the redelivery")
    assert [r.headers["webhook-id"] for r in receiver.received] == [event["id"]] * 2
    assert receiver.received[0].body == receiver.received[1].body
    log = deliveries(control, endpoint_id=endpoint["id"])
    assert [(d["attempt"], d["redelivery"], d["succeeded"]) for d in log] == [
        (1, False, True),
        (2, True, True),
    ]


def test_redeliver_to_a_disabled_endpoint_is_skipped(
    control: httpx.Client,
    receiver: Receiver,
    make_endpoint: MakeEndpoint,
    org_ids: dict[str, str],
    owner_tokens: dict[str, str],
) -> None:
    org = org_ids["demo-org"]
    endpoint = make_endpoint(org, receiver.url, ["member.created"])
    [event] = emit(control, org, "member.created", member_data())
    wait_event_done(control, event["id"])
    wf.set_enabled(control, owner_tokens, endpoint, False)
    response = control.post(f"/v1/webhooks/events/{event['id']}/redeliver", headers=_auth(owner_tokens[org]))
    assert response.status_code == 202
    wait_for(
        lambda: [e for e in wf.events(control) if e["id"] == event["id"]][0]["skipped"],
        what="the event skipped",
    )
    assert len(receiver.received) == 1


def test_control_routes_filter_by_endpoint(
    control: httpx.Client, receiver: Receiver, make_endpoint: MakeEndpoint, org_ids: dict[str, str]
) -> None:
    org = org_ids["demo-org"]
    a = make_endpoint(org, receiver.url, ["member.created"])
    b = make_endpoint(org, receiver.url + "/b", ["member.created"])
    created = emit(control, org, "member.created", member_data())
    assert {e["endpoint_id"] for e in created} == {a["id"], b["id"]}
    for event in created:
        wait_event_done(control, event["id"])
    assert [d["endpoint_id"] for d in deliveries(control, endpoint_id=a["id"])] == [a["id"]]
    assert len(deliveries(control)) == 2
    assert [e["endpoint_id"] for e in wf.events(control, endpoint_id=b["id"])] == [b["id"]]
    assert {r.path for r in receiver.received} == {"/webhooks", "/webhooks/b"}
