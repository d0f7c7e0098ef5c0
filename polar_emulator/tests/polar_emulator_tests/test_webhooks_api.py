"""Polar's webhook delivery log and redelivery API, and the emulator's webhook control routes."""

from __future__ import annotations

from polar.v2026_10 import Polar

from polar_emulator import EmulatorServer
from polar_emulator_tests import webhook_fixtures as wf
from polar_emulator_tests.conftest import IssueToken
from polar_emulator_tests.spec import validate_response
from polar_emulator_tests.webhook_fixtures import Hooks, deliveries, wait_event_done
from polar_emulator_tests.webhook_receiver import wait_for

# Fixtures used by this module.
receiver, make_endpoint, org_ids, owner_tokens, hooks = wf.FIXTURES


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Polar-Version": "2026-10"}


def _deliver_some(hooks: Hooks) -> dict:
    """One demo-org endpoint with a failed-then-succeeded member.created and a succeeded member.updated."""
    endpoint = hooks.endpoint(["member.created", "member.updated"])
    hooks.receiver.fail(1)
    hooks.deliver()
    hooks.deliver("member.updated")
    return endpoint


def test_list_deliveries_matches_the_spec_and_the_sdk(emulator: EmulatorServer, hooks: Hooks) -> None:
    org = hooks.org
    endpoint = _deliver_some(hooks)
    response = hooks.control.get("/v1/webhooks/deliveries", headers=_auth(hooks.owner_tokens[org]))
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

    with Polar(hooks.owner_tokens[org], base_url=emulator.url) as polar:
        listed = polar.webhooks.list_webhook_deliveries(endpoint_id=endpoint["id"], limit=100)
    assert len(listed.items) == 3
    assert listed.items[0].webhook_event.api_version == "2026-10"


def test_list_deliveries_filters(hooks: Hooks) -> None:
    org = hooks.org
    endpoint = _deliver_some(hooks)
    auth = _auth(hooks.owner_tokens[org])

    def count(**params: object) -> int:
        response = hooks.control.get("/v1/webhooks/deliveries", params=params, headers=auth)
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
    page = hooks.control.get("/v1/webhooks/deliveries", params={"limit": 2, "page": 2}, headers=auth).json()
    assert len(page["items"]) == 1 and page["pagination"] == {"total_count": 3, "max_page": 2}
    assert hooks.control.get("/v1/webhooks/deliveries", params={"limit": 0}, headers=auth).status_code == 422


def test_list_deliveries_needs_a_webhooks_scope_and_hides_other_orgs(
    hooks: Hooks, issue_token: IssueToken
) -> None:
    _deliver_some(hooks)
    no_scope = issue_token("demo@polar.local", scope="products:read")
    assert hooks.control.get("/v1/webhooks/deliveries", headers=_auth(no_scope)).status_code == 403
    assert hooks.control.get("/v1/webhooks/deliveries").status_code == 401
    read_only = issue_token("demo@polar.local", scope="webhooks:read")
    assert (
        hooks.control.get("/v1/webhooks/deliveries", headers=_auth(read_only)).json()["pagination"][
            "total_count"
        ]
        == 3
    )
    other = hooks.control.get(
        "/v1/webhooks/deliveries", headers=_auth(hooks.owner_tokens[hooks.org_ids["acme"]])
    ).json()
    assert other["items"] == []


def test_redeliver_sends_the_same_event_again(hooks: Hooks, issue_token: IssueToken) -> None:
    org = hooks.org
    endpoint = hooks.endpoint(["member.created"])
    event = hooks.deliver()

    read_only = issue_token("demo@polar.local", scope="webhooks:read")
    url = f"/v1/webhooks/events/{event['id']}/redeliver"
    assert hooks.control.post(url, headers=_auth(read_only)).status_code == 403
    assert (
        hooks.control.post(url, headers=_auth(hooks.owner_tokens[hooks.org_ids["acme"]])).status_code == 404
    )
    missing = "/v1/webhooks/events/00000000-0000-4000-8000-000000000000/redeliver"
    assert hooks.control.post(missing, headers=_auth(hooks.owner_tokens[org])).status_code == 404

    response = hooks.control.post(url, headers=_auth(hooks.owner_tokens[org]))
    assert response.status_code == 202
    wait_for(lambda: len(deliveries(hooks.control, endpoint_id=endpoint["id"])) == 2, what="the redelivery")
    assert [r.headers["webhook-id"] for r in hooks.receiver.received] == [event["id"]] * 2
    assert hooks.receiver.received[0].body == hooks.receiver.received[1].body
    log = deliveries(hooks.control, endpoint_id=endpoint["id"])
    assert [(d["attempt"], d["redelivery"], d["succeeded"]) for d in log] == [
        (1, False, True),
        (2, True, True),
    ]


def test_redeliver_to_a_disabled_endpoint_is_skipped(hooks: Hooks) -> None:
    org = hooks.org
    endpoint = hooks.endpoint(["member.created"])
    event = hooks.deliver()
    hooks.set_enabled(endpoint, False)
    response = hooks.control.post(
        f"/v1/webhooks/events/{event['id']}/redeliver", headers=_auth(hooks.owner_tokens[org])
    )
    assert response.status_code == 202
    wait_for(
        lambda: [e for e in wf.events(hooks.control) if e["id"] == event["id"]][0]["skipped"],
        what="the event skipped",
    )
    assert len(hooks.receiver.received) == 1


def test_control_routes_filter_by_endpoint(hooks: Hooks) -> None:
    org = hooks.org
    a = hooks.endpoint(["member.created"])
    b = hooks.make_endpoint(org, hooks.receiver.url + "/b", ["member.created"])
    created = hooks.emit()
    assert {e["endpoint_id"] for e in created} == {a["id"], b["id"]}
    for event in created:
        wait_event_done(hooks.control, event["id"])
    assert [d["endpoint_id"] for d in deliveries(hooks.control, endpoint_id=a["id"])] == [a["id"]]
    assert len(deliveries(hooks.control)) == 2
    assert [e["endpoint_id"] for e in wf.events(hooks.control, endpoint_id=b["id"])] == [b["id"]]
    assert {r.path for r in hooks.receiver.received} == {"/webhooks", "/webhooks/b"}
