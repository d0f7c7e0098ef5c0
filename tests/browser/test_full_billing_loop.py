"""The whole billing loop in Chromium, as a new user meets it on ``make run``: the owner connects
Polar in test mode, creates an API key and points event forwarding at ExampleNotes
(examples/tenant_app), then pastes both on ExampleNotes' Setup page; a customer signs in by name,
buys Pro (monthly) on the local Polar's checkout page and sees it active in ExampleNotes from the
event the platform forwarded; the owner sees the customer and the subscription on the billing page;
the customer uses the product and watches the meter move.

Nothing is faked: the worker receives Polar's webhooks, processes them into the connection's billing
state, forwards them signed to ExampleNotes and sends the usage on to Polar, whose
``customer.state_changed`` comes back the same way. Screenshots of the key pages are left under the
test's tmp dir (``shots/``)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from polar_emulator.config import DEMO_USER_EMAIL
from werkzeug.serving import make_server

from examples.tenant_app import Config, create_app
from tests.browser.live import LivePlatform, assert_accessible
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page

CUSTOMER = "ada"
# From Pay to the forwarded event, and from Use it to the moved meter: a few jobs of the worker and
# a webhook delivery of the local Polar each.
LOOP_TIMEOUT_S = 30.0


@pytest.fixture
def example_app(live_platform: LivePlatform, tmp_path: Path) -> Iterator[str]:
    """ExampleNotes on a free loopback port, calling the live platform, with no key or secret yet
    (the customer's side of the loop, a separate app reached over HTTP only)."""
    app = create_app(Config(api_url=live_platform.base_url, data_dir=tmp_path / "example"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="example-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot at ``<tmp dir>/shots/<name>.png``, to look at."""
    folder = tmp_path / "shots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def _reload_until(page: Page, locator: Locator, text: str | re.Pattern[str], timeout_s: float) -> None:
    """ExampleNotes' pages show what is known when they are rendered (no script): reload until
    ``locator`` contains ``text``, each look bounded by Playwright's expect, the whole by a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            expect(locator).to_contain_text(text, timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        page.reload()


def test_a_purchase_in_the_example_app_comes_back_as_a_forwarded_event_and_on_the_billing_page(
    new_page: Callable[[], Page], live_platform: LivePlatform, example_app: str, tmp_path: Path
) -> None:
    owner_page = new_page()
    customer_page = new_page()  # another browser: the customer's cookies, not the owner's

    # 1. The owner signs in and connects Polar in test mode.
    workspace = live_platform.create_owner("Notes Workspace")
    live_platform.sign_in(owner_page, workspace.owner.email)
    open_billing_page(owner_page, "Notes Workspace")
    owner_page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(owner_page, live_platform)
    owner_page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(
        DEMO_USER_EMAIL
    )
    owner_page.get_by_role("button", name="Allow").click()
    expect(owner_page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    billing = owner_page.locator("#billing-state")
    expect(billing.locator("#billing-counts")).to_contain_text("No customers yet")

    # 2. An API key, shown once; then event forwarding to ExampleNotes, its secret shown once.
    keys = owner_page.locator("#api-keys")
    keys.get_by_label("Name").fill("ExampleNotes")
    keys.get_by_role("button", name="Create API key").click()
    expect(owner_page.get_by_role("heading", name="API key created")).to_be_visible()
    key = owner_page.get_by_label(re.compile("^ExampleNotes")).input_value()
    owner_page.get_by_role("link", name="Done: back to the billing page").click()

    webhook_url = f"{example_app}/webhooks/connect-polar"
    forwarding = owner_page.locator("#event-forwarding")
    forwarding.get_by_label("Endpoint URL").fill(webhook_url)
    forwarding.get_by_role("button", name="Save and show the secret").click()
    expect(owner_page.get_by_role("heading", name="Event forwarding is set up")).to_be_visible()
    secret = owner_page.get_by_label(re.compile("^Signing secret for")).input_value()
    assert secret.startswith("whsec_")
    owner_page.get_by_role("link", name="Done: back to the billing page").click()
    expect(forwarding.locator("#forwarding-url")).to_have_text(webhook_url)

    # 3. ExampleNotes' Setup page: the key and the secret pasted.
    page = customer_page
    page.goto(example_app + "/setup")
    page.get_by_label("API key").fill(key)
    page.get_by_label("Webhook signing secret").fill(secret)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_contain_text(
        "test mode billing, 4 plans"
    )
    expect(page.locator("#webhook_secret-help")).to_have_text("Set. Paste another to replace it.")
    _shot(page, tmp_path, "1-example-setup")

    # 4. A customer signs in by name, chooses Pro (monthly) and pays on the local Polar's checkout.
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Your name").fill(CUSTOMER)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("You have no subscription yet")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    page.get_by_role("button", name="Choose Pro (monthly)").click()
    expect(page).to_have_url(re.compile("^" + re.escape(live_platform.polar.url)))
    page.get_by_label("Email").fill("ada@example.com")
    _shot(page, tmp_path, "2-polar-checkout")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(example_app) + r"/account\?checkout_id="))
    expect(page.get_by_text("Polar confirmed your payment")).to_be_visible()

    # 5. Active, from the events the platform forwarded (Polar → platform → worker → ExampleNotes).
    # Polar sends a purchase's events concurrently, in no set order: the Account page names the
    # latest that arrived; the Events page lists each, subscription.active among them.
    last_event = page.locator(".event-line")
    _reload_until(page, last_event, re.compile(r"^Last event: [a-z_]+\.[a-z_]+"), LOOP_TIMEOUT_S)
    subscription = page.locator("section").filter(has=page.get_by_role("heading", name="Subscription"))
    expect(subscription).to_contain_text("Pro (monthly)")
    expect(subscription.locator(".badge")).to_have_text("active")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Billing events")).to_be_visible()
    activated = page.locator("table.events tbody tr").filter(
        has=page.get_by_role("cell", name="subscription.active", exact=True)
    )
    _reload_until(page, page.locator("table.events"), "subscription.active", LOOP_TIMEOUT_S)
    expect(activated.locator("td").nth(2)).to_have_text(CUSTOMER)
    expect(activated.locator("td").nth(3)).to_have_text("pro-monthly")
    expect(activated.locator("td").nth(4)).to_have_text("active")
    # Polar's whole state of the customer came too: the tenant API answers from the state the
    # platform built from Polar's webhooks, not by asking Polar.
    _reload_until(page, page.locator("table.events"), "customer.state_changed", LOOP_TIMEOUT_S)
    _shot(page, tmp_path, "3-example-events")
    # The tenant API answers from the state built from Polar's webhooks, not from Polar.
    state = httpx.get(
        f"{live_platform.base_url}/api/v1/customers/{CUSTOMER}/state",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).json()
    assert state["source"] == "local", state
    assert [(s["plan"], s["status"]) for s in state["active_subscriptions"]] == [("pro-monthly", "active")]

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    expect(last_event).to_contain_text(re.compile(r"^Last event: [a-z_]+\.[a-z_]+"))
    _shot(page, tmp_path, "4-example-account-active")

    # 6. The owner's billing page: the customer, by the name they signed in with, on Pro (monthly).
    owner_page.reload()
    expect(billing.locator("#billing-counts")).to_have_text(
        re.compile(r"^1 customer,\s+1 active subscription:\s+1 Pro \(monthly\)\.$")
    )
    row = billing.locator("#subscriptions tbody tr").filter(has_text=CUSTOMER)
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_text(
        [CUSTOMER, "Pro (monthly)", "active", re.compile(r"^\d{4}-\d\d-\d\d$")]
    )
    # The latest deliveries to ExampleNotes (the purchase's last few events), delivered.
    expect(forwarding.locator("tr.delivery").first.locator(".delivery-status")).to_contain_text("Delivered")
    assert_accessible(owner_page)  # the section with a customer in it
    _shot(owner_page, tmp_path, "5-owner-billing-page")
    billing.screenshot(path=tmp_path / "shots" / "5-owner-billing-state-section.png")

    # 7. Use it: the usage goes to Polar through the worker, and the meter moves.
    usage = page.locator("section").filter(has=page.get_by_role("heading", name="Usage"))
    expect(usage).to_contain_text("No meter yet")
    page.get_by_role("button", name="Use it").click()
    expect(page.get_by_text("Usage recorded: one api_call event")).to_be_visible()
    meter = usage.locator("table tbody tr").filter(has=page.get_by_role("rowheader", name="API calls"))
    _reload_until(page, usage.locator("table"), "API calls", LOOP_TIMEOUT_S)
    # Polar's meter moves as the ingest call reaches it; the platform marks the event ingested
    # once that call has answered, a moment later.
    _reload_until(page, usage.get_by_role("status"), "counted by Polar", LOOP_TIMEOUT_S)
    expect(meter.locator("td")).to_have_text(["-1", "1", "0"])  # balance, used, credited
    _shot(page, tmp_path, "6-example-account-used")
