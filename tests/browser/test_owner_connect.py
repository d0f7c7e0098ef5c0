"""The owner's path in Chromium: sign in, open the billing page, Connect Polar, consent on the local
Polar, and watch the page reach Ready; or deny, and be told nothing was connected."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL
from polar_emulator.domain.store import collection

from provisioning.catalog import load_catalog
from provisioning.runs.saga import STEP_NAMES
from tests.browser.live import PASSWORD, LivePlatform

# A provisioning run is a dozen Polar calls through the worker: seconds, not the default 10 s wait.
PROVISIONING_TIMEOUT_MS = 60_000


def open_billing_page(page: Page, workspace_name: str) -> None:
    """From the home page, the workspace's Polar billing page, as the owner finds it."""
    workspace = page.get_by_role("listitem").filter(has_text=workspace_name)
    workspace.get_by_role("link", name="Polar billing").click()
    expect(page.get_by_role("heading", name="Polar billing")).to_be_visible()


def consent_page_reached(page: Page, polar: LivePlatform) -> None:
    expect(page).to_have_url(re.compile("^" + re.escape(polar.polar.url) + "/oauth2/authorize"))
    expect(page.get_by_role("heading", name=re.compile("wants to access your Polar account"))).to_be_visible()


def test_the_owner_connects_polar_and_watches_billing_become_ready(
    page: Page, live_platform: LivePlatform
) -> None:
    workspace = live_platform.create_owner("Acme Workspace", email="owner@acme.test")

    page.goto("/login")
    page.get_by_label("Email").fill("owner@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()

    open_billing_page(page, "Acme Workspace")
    badge = page.locator("#status-badge")
    expect(badge).to_have_text("Not connected")
    expect(page.locator("#steps")).to_have_text("No provisioning run yet.")

    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()

    # Back on the billing page, which follows the run by itself until it is over.
    expect(page).to_have_url(f"{live_platform.base_url}/workspaces/{workspace.id}/polar")
    expect(page.get_by_role("status")).to_have_text("Polar is connected. Setting up your billing now.")
    expect(badge).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    # The page reloads itself once the run is over: what follows is the server's rendering.
    expect(page.locator("#status-help")).to_have_text(
        "Your Polar organization holds the products of your plans and a webhook endpoint."
    )
    expect(page.get_by_role("button", name="Reconnect Polar", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Disconnect")).to_be_visible()
    expect(page.locator("#organization")).to_have_text("Demo Org demo-org")

    # Every step of the run, in order, succeeded.
    steps = page.locator("#steps li")
    expect(steps.locator(".step-name")).to_have_text([name.replace("_", " ") for name in STEP_NAMES])
    expect(steps.locator(".step-status")).to_have_text(["succeeded"] * len(STEP_NAMES))
    expect(page.locator("#last-error")).to_be_hidden()

    # The four plans' products, each with the id of a product that exists in the local Polar.
    polar_products = collection(live_platform.polar.store, "products")
    plans = load_catalog(live_platform.settings.plans_file).plans
    assert len(plans) == 4
    rows = page.locator("#products tr")
    expect(rows).to_have_count(len(plans))
    for plan in plans:
        row = rows.filter(has=page.get_by_role("cell", name=plan.name, exact=True))
        expect(row).to_have_count(1)
        product_id = row.locator("code").inner_text()
        assert polar_products[product_id]["name"] == plan.name

    # The webhook endpoint registered at Polar, pointing at this platform.
    endpoint_id = page.locator("#webhook-endpoint").inner_text()
    endpoints = collection(live_platform.polar.store, "webhook_endpoints")
    assert endpoint_id in endpoints, (endpoint_id, list(endpoints))
    assert endpoints[endpoint_id]["url"].startswith(f"{live_platform.base_url}/polar/webhooks/")


def test_denying_on_polar_connects_nothing(page: Page, live_platform: LivePlatform) -> None:
    workspace = live_platform.create_owner("Deny Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Deny Workspace")

    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("button", name="Deny").click()

    expect(page).to_have_url(re.compile("^" + re.escape(live_platform.base_url) + "/polar/callback"))
    expect(page.get_by_role("heading", name="Polar was not connected")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        "You declined access on Polar, so nothing was connected and nothing was stored."
    )

    page.get_by_role("link", name="Back to your workspaces").click()
    open_billing_page(page, "Deny Workspace")
    expect(page.locator("#status-badge")).to_have_text("Not connected")
    expect(page.get_by_role("button", name="Connect Polar", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Disconnect")).to_have_count(0)
    expect(page.locator("#products")).to_have_text("No products yet.")
