"""Deny and disconnect say what they did. A denied reconnect leaves the workspace connected, and the
page says so; Disconnect asks first, saying what happens, and afterwards the page reads "Not
connected" with the old connection as history; connecting again brings it back to Ready."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL

from tests.browser.live import LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


def _consent(page: Page, live_platform: LivePlatform, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)


def test_deny_a_reconnect_then_disconnect_then_connect_again(page: Page, live_platform: LivePlatform) -> None:
    workspace = live_platform.create_owner("Cycle Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Cycle Workspace")
    badge = page.locator("#status-badge")
    _consent(page, live_platform, "Connect Polar")
    page.get_by_role("button", name="Allow").click()
    expect(badge).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)

    # Reconnect, and deny it on Polar: still connected, and the page says so.
    _consent(page, live_platform, "Reconnect Polar")
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Polar was not reconnected")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        "You declined access on Polar, so nothing changed: this workspace is still connected to Polar "
        "(organization Demo Org) as before, with the same access."
    )
    shot(page, "deny-reconnect")
    page.get_by_role("link", name="Back to the billing page").click()
    expect(badge).to_have_text("Ready")

    # Disconnect asks first; Cancel changes nothing.
    page.get_by_role("link", name="Disconnect").click()
    expect(page.get_by_role("heading", name="Disconnect Polar?")).to_be_visible()
    effects = page.locator("#disconnect-effects li")
    expect(effects).to_have_text(
        [
            "revokes this platform's access to your Polar account,",
            "removes our webhook endpoint from the organization, so Polar stops sending us events,",
            "stops any billing setup under way.",
        ]
    )
    expect(page.get_by_role("main")).to_contain_text(
        "The products we created stay in your Polar organization"
    )
    shot(page, "disconnect-confirm")
    page.get_by_role("link", name="Cancel").click()
    expect(badge).to_have_text("Ready")

    page.get_by_role("link", name="Disconnect").click()
    page.get_by_role("button", name="Disconnect Polar").click()
    expect(page.get_by_role("status")).to_have_text(
        "Polar is disconnected: access revoked and our webhook endpoint removed. "
        "The products stay in your Polar organization."
    )
    expect(badge).to_have_text("Not connected")
    expect(page.locator("#organization")).to_have_text("—")
    expect(page.locator("#webhook-endpoint")).to_have_text("—")
    expect(page.locator("#history")).to_contain_text(
        re.compile(
            r"Disconnected on \d{4}-\d\d-\d\d \d\d:\d\d UTC\.\s+"
            r"It was connected to the Polar organization Demo Org \(demo-org\)\."
        )
    )
    expect(page.locator("#steps")).to_have_text("No provisioning run since the disconnect.")
    expect(
        page.get_by_role("heading", name="Products of the previous connection (kept at Polar)")
    ).to_be_visible()
    expect(page.get_by_role("link", name="Disconnect")).to_have_count(0)
    shot(page, "after-disconnect")
    assert_accessible(page)

    # Connect again: Ready, with the history gone.
    _consent(page, live_platform, "Connect Polar")
    page.get_by_role("button", name="Allow").click()
    expect(badge).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.locator("#history")).to_have_count(0)
    expect(page.locator("#organization")).to_have_text("Demo Org demo-org")
