"""ExampleNotes (examples/tenant_app) in Chromium, beside the live platform: the owner connects
Polar and creates a key, pastes it on the example app's Setup page; a customer signs in by name,
chooses a plan, pays on the local Polar's checkout page and comes back to see it active, then uses
the product. Every page of the example app on the way is accessible (axe-core)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL
from werkzeug.serving import make_server

from examples.tenant_app import Config, create_app
from tests.browser.live import LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


@pytest.fixture
def example_url(live_platform: LivePlatform, tmp_path: Path) -> Iterator[str]:
    """ExampleNotes on a free loopback port, calling the live platform, no key set."""
    app = create_app(Config(api_url=live_platform.base_url, data_dir=tmp_path / "example"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="example-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def _create_key(page: Page, live_platform: LivePlatform) -> str:
    """The owner connects test mode and creates a key on the billing page; returns it."""
    workspace = live_platform.create_owner("Notes Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Notes Workspace")
    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    keys = page.locator("#api-keys")
    keys.get_by_label("Name").fill("ExampleNotes")
    keys.get_by_role("button", name="Create API key").click()
    return page.get_by_label(re.compile("^ExampleNotes")).input_value()


def test_a_customer_buys_a_plan_in_the_example_app_and_uses_it(
    page: Page, live_platform: LivePlatform, example_url: str
) -> None:
    key = _create_key(page, live_platform)

    # Not set up yet: it says where the key comes from.
    page.goto(example_url + "/plans")
    expect(page.get_by_role("heading", name="Connect ExampleNotes to Connect Polar")).to_be_visible()
    shot(page, "example-no-key")
    assert_accessible(page)

    page.get_by_role("link", name="Open Setup").click()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_contain_text(
        "test mode billing, 4 plans"
    )
    shot(page, "example-setup")
    assert_accessible(page)

    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Your name").fill("ada")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("You have no subscription yet")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    expect(page.get_by_role("heading", name="Pro (monthly)", exact=True)).to_be_visible()
    shot(page, "example-plans")
    assert_accessible(page)

    # Choose: Polar's hosted checkout page (the local Polar's), then back.
    page.get_by_role("button", name="Choose Pro (monthly)").click()
    expect(page).to_have_url(re.compile("^" + re.escape(live_platform.polar.url)))
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_role("button", name=re.compile("^Pay")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(example_url) + r"/account\?checkout_id="))
    expect(page.get_by_text("Polar confirmed your payment")).to_be_visible()
    subscription = page.locator("section").filter(has=page.get_by_role("heading", name="Subscription"))
    expect(subscription).to_contain_text("Pro (monthly)")
    expect(subscription).to_contain_text("active")
    expect(page.get_by_role("button", name="Manage billing")).to_be_visible()
    shot(page, "example-account")
    assert_accessible(page)

    # Use it: a usage event, accepted by the platform.
    if "api.record_usage" in live_platform.app.view_functions:
        page.get_by_role("button", name="Use it").click()
        expect(page.get_by_text("Usage recorded: one api_call event")).to_be_visible()
        shot(page, "example-account-used")
        assert_accessible(page)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Billing events")).to_be_visible()
    expect(page.get_by_text(example_url + "/webhooks/connect-polar")).to_be_visible()
    shot(page, "example-events")
    assert_accessible(page)
