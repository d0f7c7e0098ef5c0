"""Two connects in flight in one browser: two tabs of the same billing page each click Connect
Polar. Whichever is allowed first, the newer connect is the one in place; an older one that comes
back after the newer finished says, in words, that it was replaced."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL

from tests.browser.live import LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


def _connect_in_a_tab(page: Page, live_platform: LivePlatform, workspace_name: str) -> None:
    page.goto("/")
    open_billing_page(page, workspace_name)
    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)


def _allowed_and_ready(
    page: Page, live_platform: LivePlatform, workspace_id: str, *, message: bool = True
) -> None:
    """Allow on the consent page and come back to billing, Ready. ``message``: the one-time
    "connected" message is this tab's to show; a message is shown once per session, so another tab
    of the same browser that reloads in between (its page reloads when the connection's state
    changes) may be the one that shows it."""
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(f"{live_platform.base_url}/workspaces/{workspace_id}/polar")
    if message:
        expect(page.get_by_role("status")).to_have_text("Polar is connected. Setting up your billing now.")
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)


@pytest.mark.parametrize("first", ["older", "newer"])
def test_two_tabs_connect_and_the_newer_wins(page: Page, live_platform: LivePlatform, first: str) -> None:
    workspace = live_platform.create_owner("Tabs Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    older = page
    _connect_in_a_tab(older, live_platform, "Tabs Workspace")
    newer = page.context.new_page()  # the same browser: the same cookies and session
    _connect_in_a_tab(newer, live_platform, "Tabs Workspace")

    if first == "older":
        _allowed_and_ready(older, live_platform, workspace.id)
        # Finishing the older one left the newer one pending: it finishes too, and is in place. The
        # older tab, Ready, reloads when the connection goes back to provisioning: it may show the
        # message the newer callback left.
        _allowed_and_ready(newer, live_platform, workspace.id, message=False)
    else:
        _allowed_and_ready(newer, live_platform, workspace.id)
        older.get_by_role("button", name="Allow").click()
        expect(older.get_by_role("heading", name="A newer connect replaced this one")).to_be_visible()
        expect(older.get_by_role("main")).to_contain_text(
            "You started connecting Polar again, in another tab or window, and that newer connection "
            "has already finished, so this older one was not used."
        )
        shot(older, "callback-replaced")
        assert_accessible(older)
        older.get_by_role("link", name="Back to the billing page").click()
        expect(older.locator("#status-badge")).to_have_text("Ready")
        expect(older.get_by_role("button", name="Reconnect Polar", exact=True)).to_be_visible()
