"""Support staff in Chromium: find a workspace whose setup failed, read why, re-provision it with a
reason, watch it become ready, and find the action in the audit trail."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL

from tests.browser.live import LivePlatform, shot

PROVISIONING_TIMEOUT_MS = 60_000
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"


def test_staff_fix_a_failed_setup_from_the_console(page: Page, new_page, live_platform: LivePlatform) -> None:
    live_platform.create_owner("Broken Billing", email="owner@broken.test")
    live_platform.create_user("support@connect-polar.test", staff=True)
    control = httpx.Client(base_url=live_platform.polar.url, timeout=10)
    # Polar refuses every product create: the owner's setup fails at "ensure products".
    control.post(
        "/_emulator/faults", json={"path": "/v1/products/", "method": "POST", "status": 403, "count": 1000}
    ).raise_for_status()

    owner = new_page()
    live_platform.sign_in(owner, "owner@broken.test")
    owner.get_by_role("link", name="Polar billing").click()
    owner.get_by_role("button", name="Connect Polar", exact=True).click()
    owner.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    owner.get_by_role("button", name="Allow").click()
    expect(owner.locator("#status-badge")).to_have_text("Failed", timeout=PROVISIONING_TIMEOUT_MS)

    # Staff find it among the problems, by its owner's email.
    live_platform.sign_in(page, "support@connect-polar.test")
    page.goto("/admin/workspaces")
    page.get_by_label("Search").fill("owner@broken")
    page.get_by_label("with problems").check()
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text="Broken Billing")
    expect(row).to_contain_text("Failed")
    row.get_by_role("link", name="Broken Billing").click()
    expect(page.get_by_role("heading", name="Broken Billing")).to_be_visible()
    workspace_url = page.url

    failed_step = page.locator("li.step-failed").first
    expect(failed_step).to_contain_text("ensure products")
    expect(failed_step.locator(".step-error")).to_contain_text("Polar refused to")

    # Polar is fixed; staff re-provision with a reason and watch the run.
    control.delete("/_emulator/faults").raise_for_status()
    page.get_by_label("Re-provision: why?").fill("Polar refused product creates; fixed on their side")
    page.get_by_role("button", name="Re-provision", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Re-provisioning")).to_be_visible()
    expect(page.locator("#connection-sandbox .status").first).to_have_text(
        "Ready", timeout=PROVISIONING_TIMEOUT_MS
    )
    expect(page.locator("details.run").first.locator("li.step-succeeded")).to_have_count(7)
    expect(page.locator("#billing-sandbox")).to_contain_text("0 customers, 0 active subscriptions.")
    shot(page, "console-workspace")

    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_label("Action").select_option("staff.reprovision")
    page.get_by_role("button", name="Filter").click()
    entry = page.get_by_role("row").filter(has_text="staff.reprovision")
    expect(entry).to_contain_text("support@connect-polar.test")
    expect(entry).to_contain_text("Polar refused product creates; fixed on their side")

    # The owner pastes a new API key into a support ticket: staff revoke it, with the reason.
    owner.reload()
    owner.locator("#key-name").fill("Pasted in a ticket")
    owner.get_by_role("button", name="Create API key").click()
    expect(owner.get_by_role("heading", name="API key created")).to_be_visible()
    page.goto(workspace_url)
    keys = page.locator("#api-keys")
    expect(keys).to_contain_text("Pasted in a ticket")
    keys.get_by_label("Revoke: why?").fill("The owner pasted the key in ticket 4711")
    if os.environ.get("PAGE_SHOTS"):
        keys.screenshot(path=str(SHOTS / "console-api-keys.png"))
    keys.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status").filter(has_text="is revoked")).to_be_visible()
    expect(page.locator("#api-keys")).to_contain_text("revoked")
