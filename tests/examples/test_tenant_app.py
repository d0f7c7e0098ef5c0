"""ExampleNotes (``examples/tenant_app``), the example tenant app, driven through its Flask test
client against the real platform on a free port (web app, committed PostgreSQL, Redis, the local
Polar): its plans page lists the catalog, Choose sends the customer to Polar's checkout, paying shows
the plan on the account page, Manage billing opens Polar's portal; forwarded events are verified
(Standard Webhooks) and shown; the API's errors read as what to do."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from polar_emulator import EmulatorServer
from polar_emulator.domain.store import collection
from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server

from app import create_app as create_platform
from app.api.openapi import DOCUMENT
from examples.tenant_app import Config, create_app
from examples.tenant_app.catalog import catalog_of, state_of
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.runs.jobs import provision
from tests.committed import connect_committed, platform_env

SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1leGFtcGxlLWFwcC0xMjM0NTY="
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- the platform, live ----------------------------------------------------------------------------


@dataclass
class Platform:
    base_url: str
    app: Flask
    settings: Settings
    database: Database

    def workspace(self, name: str, *, provisioned: bool = True) -> str:
        """A committed workspace connected in test mode (and provisioned, unless told not to);
        returns an API key of it."""
        connected = connect_committed(self.database, self.settings, name=name)
        if provisioned:
            assert provision(connected.run_id, self.settings)["status"] == "succeeded"
        with self.app.app_context(), self.database.transaction() as session:
            created = api_keys.create(
                session,
                self.settings,
                workspace_id=connected.workspace_id,
                name="ExampleNotes",
                mode=KeyMode.TEST,
            )
            return created.plaintext


@pytest.fixture
def platform(
    committing_database: Database, emulator: EmulatorServer, pg_url: str, redis_url: str
) -> Iterator[Platform]:
    """The platform's web app on a free loopback port, on a committed database and the local Polar."""
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    base_url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings.from_env(
        platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url, public_base_url=base_url)
    )
    app = create_platform(settings, database=committing_database)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Platform(base_url, app, settings, committing_database)
    server.shutdown()
    thread.join(timeout=10)


# -- ExampleNotes ----------------------------------------------------------------------------------

MakeApp = Callable[..., FlaskClient]


@pytest.fixture
def example(tmp_path: Path) -> MakeApp:
    """ExampleNotes' test client, configured as ``Config(**settings)`` with a fresh data directory."""
    made = 0

    def make(transport: httpx.BaseTransport | None = None, **settings: Any) -> FlaskClient:
        nonlocal made
        made += 1
        settings.setdefault("data_dir", tmp_path / f"example-{made}")
        settings.setdefault("secret_key", "example-notes-test-secret")
        return create_app(Config(**settings), transport=transport).test_client()

    return make


def csrf(client: FlaskClient, path: str = "/signin") -> str:
    found = CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert found, f"no form on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, name: str) -> None:
    answer = client.post("/signin", data={"name": name, "csrf_token": csrf(client)})
    assert answer.status_code == 302, answer.get_data(as_text=True)


def text(response: Any) -> str:
    """The page's text, tags dropped and spaces collapsed: what a person reads."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())


def signed(payload: dict[str, Any], secret: str = SECRET, *, msg_id: str | None = None) -> dict[str, Any]:
    """The request a Standard Webhooks sender makes: the JSON body and its three headers."""
    body = json.dumps(payload)
    msg_id = msg_id or payload["id"]
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return {"data": body, "headers": headers}


# -- plans, checkout, account, portal against the platform ----------------------------------------


def test_the_plans_page_lists_the_catalogs_plans_with_their_prices_and_benefits(
    platform: Platform, example: MakeApp
) -> None:
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes Plans"))
    page = client.get("/plans")
    assert page.status_code == 200, text(page)
    shown = text(page)
    for name in ("Free", "Pro (monthly)", "Pro (yearly)", "Pay as you go"):
        assert f"Choose {name}" in page.get_data(as_text=True)
        assert name in shown
    assert "$29 per month" in shown and "$290 per year" in shown and "$9 per month" in shown
    assert "API calls: $0.0005 each" in shown
    assert "Priority support" in shown and "10,000 API calls per month" in shown
    assert "test mode" in shown


def test_choose_sends_the_customer_to_polars_checkout_and_paying_shows_the_plan_active(
    platform: Platform, example: MakeApp, emulator: EmulatorServer, control: httpx.Client
) -> None:
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes Checkout"))

    # Signed out, Choose asks to sign in first.
    token = csrf(client, "/plans")
    asked = client.post("/checkout", data={"plan": "pro-monthly", "csrf_token": token})
    assert asked.status_code == 302 and urlsplit(asked.headers["Location"]).path == "/signin"

    sign_in(client, "ada")
    answer = client.post("/checkout", data={"plan": "pro-monthly", "csrf_token": csrf(client, "/plans")})
    assert answer.status_code == 303, text(answer)
    checkout_url = answer.headers["Location"]
    assert checkout_url.startswith(emulator.url), checkout_url
    [checkout] = collection(emulator.store, "checkouts").values()
    assert checkout["external_customer_id"] == "ada"
    assert checkout["success_url"] == "http://localhost/account?checkout_id={CHECKOUT_ID}"

    # The customer types their email on Polar's hosted page, pays and comes back to the account page.
    assert "Pay" in httpx.get(checkout_url).text
    paid = control.post(checkout_url, data={"customer_email": "ada@example.com"}, follow_redirects=False)
    assert paid.status_code == 303, paid.text
    back = urlsplit(paid.headers["location"])
    assert back.path == "/account" and back.query == f"checkout_id={checkout['id']}"

    account = client.get(f"/account?{back.query}")
    assert account.status_code == 200, text(account)
    shown = text(account)
    assert "Polar confirmed your payment" in shown
    assert "Pro (monthly) active Renews on" in shown
    assert "Priority support" in shown and "Pro features" in shown
    assert "Use it" not in shown or "api_call" in shown

    # The plans page marks the plan as the customer's.
    assert "Your plan" in text(client.get("/plans"))

    # Manage billing opens the customer's portal at Polar.
    portal = client.post("/account/portal", data={"csrf_token": csrf(client, "/account")})
    assert portal.status_code == 303, text(portal)
    assert portal.headers["Location"].startswith(emulator.url)
    assert httpx.get(portal.headers["Location"]).status_code < 500


def test_a_customer_with_nothing_bought_is_invited_to_choose_a_plan(
    platform: Platform, example: MakeApp
) -> None:
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes New"))
    assert client.get("/account").status_code == 302  # signed out: to the sign-in page
    sign_in(client, "grace")
    account = client.get("/account")
    assert account.status_code == 200
    shown = text(account)
    assert "You have no subscription yet" in shown
    assert "Manage billing" not in shown
    assert "Use it" in shown  # the usage plan meters api_call

    # The portal of a customer Polar does not know sends them to the plans.
    portal = client.post("/account/portal", data={"csrf_token": csrf(client, "/account")})
    assert urlsplit(portal.headers["Location"]).path == "/plans"
    assert "choose a plan first" in text(client.get("/plans"))


def test_usage_reaches_the_platform(platform: Platform, example: MakeApp) -> None:
    if "api.record_usage" not in platform.app.view_functions:
        pytest.skip("the platform does not serve POST /api/v1/usage yet")
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes Usage"))
    sign_in(client, "ada")
    page = client.get("/account").get_data(as_text=True)
    usage_id = re.search(r'name="usage_id" value="([^"]+)"', page)
    assert usage_id
    form = {"csrf_token": csrf(client, "/account"), "event_name": "api_call", "usage_id": usage_id.group(1)}
    assert client.post("/account/usage", data=form).status_code == 302
    assert "Usage recorded" in text(client.get("/account"))
    # The same form sent again counts once.
    client.post("/account/usage", data=form)
    assert "Already recorded" in text(client.get("/account"))


# -- usage, as the contract has it -----------------------------------------------------------------

PLANS = {
    "mode": "test",
    "environment": "sandbox",
    "organization_id": "org",
    "catalog_revision": "r1",
    "plans": [
        {
            "id": "usage",
            "name": "Pay as you go",
            "description": None,
            "interval": "month",
            "interval_count": 1,
            "polar_product_id": "prod",
            "prices": [
                {"type": "fixed", "currency": "usd", "amount": 900},
                {
                    "type": "metered_unit",
                    "currency": "usd",
                    "unit_amount": "0.05",
                    "cap_amount": None,
                    "meter": {
                        "id": "api-calls",
                        "name": "API calls",
                        "event_name": "api_call",
                        "aggregation": "count",
                        "property": None,
                    },
                },
            ],
            "benefits": [],
        }
    ],
}


def test_meters_are_named_by_the_catalog_and_others_by_polars_id() -> None:
    catalog = catalog_of(PLANS)
    meter = {"balance": -2, "consumed_units": 2, "credited_units": 0}
    answer = {
        "meters": [
            {"meter": "api-calls", "meter_id": "m-1", **meter},
            {"meter": None, "meter_id": "m-2", **meter},
        ]
    }
    assert [(m.name, m.balance, m.consumed) for m in state_of(answer, catalog).meters] == [
        ("API calls", "-2", "2"),
        ("Meter m-2", "-2", "2"),
    ]


def test_use_it_posts_a_usage_event_of_the_metered_event_name(example: MakeApp) -> None:
    sent: list[dict[str, Any]] = []
    seen_ids: set[str] = set()

    def platform_api(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer cp_test_example"
        path = request.url.path
        if path == "/api/v1/plans":
            return httpx.Response(200, json=PLANS)
        if path == "/api/v1/customers/ada/state":
            return httpx.Response(404, json={"error": {"code": "unknown_customer", "message": "Unknown."}})
        if path == "/api/v1/usage" and request.method == "POST":
            body = json.loads(request.content)
            sent.append(body)
            [event] = body["events"]
            status = "duplicate" if event["external_id"] in seen_ids else "accepted"
            seen_ids.add(event["external_id"])
            return httpx.Response(
                202,
                json={
                    "accepted": int(status == "accepted"),
                    "duplicates": int(status == "duplicate"),
                    "events": [{"external_id": event["external_id"], "status": status}],
                },
            )
        if path.startswith("/api/v1/usage/"):
            return httpx.Response(404, json={"error": {"code": "unknown_usage_event", "message": "No."}})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "No such route."}})

    client = example(
        httpx.MockTransport(platform_api), api_url="http://platform.test", api_key="cp_test_example"
    )
    sign_in(client, "ada")
    page = client.get("/account")
    assert page.status_code == 200, text(page)
    assert "Records one api_call event (API calls)" in text(page)
    usage_id = re.search(r'name="usage_id" value="([^"]+)"', page.get_data(as_text=True))
    assert usage_id
    form = {"csrf_token": csrf(client, "/account"), "event_name": "api_call", "usage_id": usage_id.group(1)}

    assert client.post("/account/usage", data=form).status_code == 302
    assert sent == [
        {"events": [{"name": "api_call", "external_customer_id": "ada", "external_id": usage_id.group(1)}]}
    ]
    assert "Usage recorded: one api_call event" in text(client.get("/account"))
    client.post("/account/usage", data=form)  # the same form again
    assert "Already recorded" in text(client.get("/account"))

    # The body is the one the API's document describes, where it describes it.
    schema = DOCUMENT["components"]["schemas"].get("UsageCreate")
    if schema is not None:
        import jsonschema

        jsonschema.validate(sent[0], {**schema, "components": DOCUMENT["components"]})

    # An event no plan meters is not sent.
    client.post("/account/usage", data={**form, "event_name": "other"})
    assert len(sent) == 2
    assert "No plan meters that usage" in text(client.get("/account"))


# -- forwarded events ------------------------------------------------------------------------------

EVENT = {
    "id": "evt_1",
    "type": "subscription.active",
    "timestamp": "2026-12-02T10:00:00Z",
    "customer_external_id": "ada",
    "plan": "pro-monthly",
    "status": "active",
    "data": {"subscription_id": "sub_1"},
}


def test_a_signed_event_is_kept_and_shown_and_a_bad_signature_refused(example: MakeApp) -> None:
    # The platform is not even reachable: the events still arrive and show.
    client = example(api_url="http://127.0.0.1:9", api_key="cp_test_example", webhook_secret=SECRET)

    forged = signed({**EVENT, "id": "evt_forged"}, "whsec_" + "b3RoZXItc2VjcmV0LW9mLWFub3RoZXItYXBwLTEyMzQ=")
    assert client.post("/webhooks/connect-polar", **forged).status_code == 403
    tampered = signed(EVENT)
    tampered["data"] = tampered["data"].replace("pro-monthly", "pro-yearly")
    assert client.post("/webhooks/connect-polar", **tampered).status_code == 403
    assert client.post("/webhooks/connect-polar", json=EVENT).status_code == 403  # no signature
    stale = signed(EVENT)
    stale["headers"]["webhook-timestamp"] = str(int(time.time()) - 3600)
    assert client.post("/webhooks/connect-polar", **stale).status_code == 403
    assert "None received yet" in text(client.get("/events"))

    answer = client.post("/webhooks/connect-polar", **signed(EVENT))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"received": "evt_1", "duplicate": False}
    # Delivered again (the platform retries when an answer is lost): kept once.
    assert client.post("/webhooks/connect-polar", **signed(EVENT)).get_json()["duplicate"] is True
    other = {**EVENT, "id": "evt_2", "type": "order.paid", "customer_external_id": "grace", "status": None}
    assert client.post("/webhooks/connect-polar", **signed(other)).status_code == 200

    events = text(client.get("/events"))
    assert "subscription.active ada pro-monthly active" in events
    assert "order.paid grace pro-monthly" in events
    assert events.count("Event evt_1") == 1

    sign_in(client, "ada")
    account = client.get("/account")
    shown = text(account)
    assert "Last event: subscription.active for plan pro-monthly" in shown
    assert "Connect Polar cannot be reached" in shown  # the state cannot be read, the event still shows


def test_events_are_refused_until_a_secret_is_set_and_a_signed_non_event_is_a_400(example: MakeApp) -> None:
    client = example(api_url="http://127.0.0.1:9")
    assert client.post("/webhooks/connect-polar", **signed(EVENT)).status_code == 503
    assert "No signing secret yet" in text(client.get("/events"))

    client = example(api_url="http://127.0.0.1:9", webhook_secret=SECRET)
    not_json = signed(EVENT)
    not_json["data"] = "not json"
    not_json["headers"]["webhook-signature"] = Webhook(SECRET).sign(
        "evt_1", datetime.fromtimestamp(int(not_json["headers"]["webhook-timestamp"]), UTC), "not json"
    )
    assert client.post("/webhooks/connect-polar", **not_json).status_code == 400
    assert client.post("/webhooks/connect-polar", **signed({"id": "evt_3"})).status_code == 400


# -- errors, said as what to do --------------------------------------------------------------------


def test_api_errors_are_shown_as_what_to_do(platform: Platform, example: MakeApp) -> None:
    # No key at all: where to get one.
    page = example(api_url=platform.base_url).get("/plans")
    assert page.status_code == 503
    shown = text(page)
    assert "ExampleNotes has no API key yet" in shown and "CONNECT_POLAR_API_KEY" in shown
    assert "Open Setup" in shown

    # A key the platform refuses (401): set CONNECT_POLAR_API_KEY.
    bad = "cp_test_aaaaaaaaaaaa_" + "x" * 43
    page = example(api_url=platform.base_url, api_key=bad).get("/plans")
    assert page.status_code == 503
    shown = text(page)
    assert "Connect Polar refused the API key" in shown
    assert "set CONNECT_POLAR_API_KEY" in shown and "unauthorized, HTTP 401" in shown

    # Billing still being set up (409 not_ready): the platform's own words.
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes Setup", provisioned=False))
    page = client.get("/plans")
    assert page.status_code == 503
    shown = text(page)
    assert "Billing is not set up yet" in shown and "try again in a minute" in shown
    assert "not_ready, HTTP 409" in shown

    # Nothing answers at CONNECT_POLAR_URL.
    page = example(api_url="http://127.0.0.1:9", api_key=bad).get("/plans")
    assert page.status_code == 503
    shown = text(page)
    assert "Connect Polar cannot be reached" in shown and "make run" in shown

    # A plan the catalog does not have (422): said on the plans page.
    client = example(api_url=platform.base_url, api_key=platform.workspace("Notes Ready"))
    sign_in(client, "ada")
    answer = client.post("/checkout", data={"plan": "platinum", "csrf_token": csrf(client, "/plans")})
    assert answer.status_code == 302 and urlsplit(answer.headers["Location"]).path == "/plans"
    shown = text(client.get("/plans"))
    assert "Connect Polar refused the request" in shown and "platinum" in shown


# -- set-up, sign-in and forms ---------------------------------------------------------------------


def test_the_key_and_secret_pasted_on_setup_are_kept_and_used(platform: Platform, example: MakeApp) -> None:
    key = platform.workspace("Notes Paste")
    client = example(api_url=platform.base_url)
    assert "not connected to Connect Polar yet" in text(client.get("/plans"))
    page = client.get("/setup")
    assert page.status_code == 200
    assert "ExampleNotes has no API key yet" in text(page)

    refused = client.post("/setup", data={"csrf_token": csrf(client, "/setup"), "api_key": "sk_live_nope"})
    assert refused.status_code == 422
    assert "starts with cp_test_ or cp_live_" in text(refused)
    refused = client.post("/setup", data={"csrf_token": csrf(client, "/setup"), "webhook_secret": "whsec_"})
    assert refused.status_code == 422

    form = {"csrf_token": csrf(client, "/setup"), "api_key": key, "webhook_secret": SECRET}
    assert client.post("/setup", data=form).status_code == 302
    shown = text(client.get("/setup"))
    assert "Connected: the key reads the workspace's test mode billing, 4 plans" in shown
    assert key not in client.get("/setup").get_data(as_text=True)  # shown by its prefix only
    assert key[:20] + "…" in shown
    assert client.get("/plans").status_code == 200
    assert client.post("/webhooks/connect-polar", **signed(EVENT)).status_code == 200


def test_keys_set_in_the_environment_win_and_cannot_be_replaced_on_setup(
    example: MakeApp, tmp_path: Path
) -> None:
    data_dir = tmp_path / "env-wins"
    client = example(api_url="http://127.0.0.1:9", api_key="cp_test_fromenvironment_x", data_dir=data_dir)
    page = text(client.get("/setup"))
    assert "Set by CONNECT_POLAR_API_KEY : cp_test_fromenvironm…" in page
    form = {"csrf_token": csrf(client, "/setup"), "api_key": "cp_test_pasted_y"}
    client.post("/setup", data=form)
    assert not (data_dir / "settings.json").exists()
    assert Config.from_env({"CONNECT_POLAR_API_KEY": " cp_test_k "}).api_key == "cp_test_k"
    assert Config.from_env({"CONNECT_POLAR_URL": "http://billing.test/"}).api_url == "http://billing.test"


def test_sign_in_by_name_and_forms_need_their_token(example: MakeApp) -> None:
    client = example(api_url="http://127.0.0.1:9")
    refused = client.post("/signin", data={"name": "../../etc", "csrf_token": csrf(client)})
    assert refused.status_code == 422 and "1 to 64 characters" in text(refused)
    assert client.post("/signin", data={"name": "ada"}).status_code == 400  # no token
    answer = client.post(
        "/signin", data={"name": "Ada Lovelace", "csrf_token": csrf(client), "next": "https://evil.test/"}
    )
    assert urlsplit(answer.headers["Location"]).path == "/account"
    assert "Signed in as Ada Lovelace" in text(client.get("/plans"))
    assert client.post("/signout", data={"csrf_token": csrf(client, "/plans")}).status_code == 302
    assert "Signed in as" not in text(client.get("/plans"))
