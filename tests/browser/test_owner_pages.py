"""The owner's pages as a person meets them: a workspace created from the home page; the billing
page's plans with their prices and billing interval, the connected account, organization (with a
link to it at Polar), environment, webhook URL and last event; every page reachable by keyboard,
without a 404 (the favicon included) and without a serious or critical axe-core violation."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Response, expect
from polar_emulator.config import DEMO_USER_EMAIL

from tests.browser.live import LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


def _tab_to(page: Page, name: str, *, limit: int = 30) -> None:
    """Press Tab until the focused control is the one named ``name`` (keyboard-reachable)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => (document.activeElement && (document.activeElement.innerText"
            " || document.activeElement.value || '')).trim()"
        )
        if focused == name:
            return
    raise AssertionError(f"{name!r} is not reachable with Tab on {page.url}")


def test_a_new_workspace_connects_by_keyboard_on_accessible_pages(
    page: Page, live_platform: LivePlatform
) -> None:
    missing: list[str] = []

    def note(response: Response) -> None:
        if response.status == 404 and response.url.startswith(live_platform.base_url):
            missing.append(response.url)

    page.on("response", note)
    owner = live_platform.create_user("owner@pages.test")
    live_platform.create_workspace("First Workspace", owner)
    page.goto("/login")
    assert_accessible(page)
    live_platform.sign_in(page, owner.email)
    assert_accessible(page)

    # A second workspace, from the home page; a blank name is refused in words.
    page.get_by_label("Workspace name").fill("   ")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#name-error")).to_have_text("Enter a name for the workspace.")
    page.get_by_label("Workspace name").fill("Second Workspace")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("status")).to_have_text(
        "Workspace Second Workspace created. Connect Polar to set up its billing."
    )
    expect(page.get_by_role("heading", name="Polar billing")).to_be_visible()
    expect(page.locator("#connection-environment")).to_have_text("Test mode (Polar sandbox)")
    assert_accessible(page)
    page.goto("/")
    expect(page.get_by_role("listitem")).to_have_count(2)
    open_billing_page(page, "Second Workspace")

    # Connect with the keyboard alone.
    _tab_to(page, "Connect Polar")
    page.keyboard.press("Enter")
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)

    expect(page.locator("#account")).to_have_text(DEMO_USER_EMAIL)
    expect(page.locator("#organization-link")).to_have_attribute(
        "href", f"{live_platform.polar.url}/dashboard/demo-org"
    )
    expect(page.locator("#webhook-url")).to_have_text(
        re.compile("^" + re.escape(f"{live_platform.base_url}/polar/webhooks/") + "[0-9a-f]{32}$")
    )
    rows = page.locator("#products tr")
    expect(rows.locator("td.price")).to_have_text(
        ["Free", "$29.00", "$290.00", "$9.00; $0.0005 per unit of API calls"]
    )
    expect(rows.locator("td.billing")).to_have_text(["monthly", "monthly", "yearly", "monthly"])
    shot(page, "billing-ready")
    assert_accessible(page)

    page.get_by_role("link", name="Disconnect").click()
    assert_accessible(page)
    page.get_by_role("link", name="Cancel").click()

    # A denied reconnect's result page, and the way back by keyboard.
    page.get_by_role("button", name="Reconnect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Polar was not reconnected")).to_be_visible()
    assert_accessible(page)
    _tab_to(page, "Back to the billing page")
    page.keyboard.press("Enter")
    expect(page.locator("#status-badge")).to_have_text("Ready")

    assert not missing, missing
    favicon = page.request.get("/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/svg+xml")
