"""An owner's API key in Chromium: created on the billing page, shown once on the answer page,
answering the tenant API at once; revoked after confirming, and refused from then on. Every page on
the way is accessible (axe-core)."""

from __future__ import annotations

import os
import re

import httpx
from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL

from tests.browser.live import PAGE_SHOTS, LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page

KEY_RE = re.compile(r"^cp_test_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$")


def _plans(live_platform: LivePlatform, key: str) -> httpx.Response:
    """What the tenant's own deployment does: no browser, no cookie, the key in a header."""
    return httpx.get(
        live_platform.url("/api/v1/plans"), headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def test_an_owner_creates_a_key_sees_it_once_and_revokes_it(page: Page, live_platform: LivePlatform) -> None:
    workspace = live_platform.create_owner("Keys Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Keys Workspace")

    # Before any connection, no key can be made: it would have nothing to read.
    keys = page.locator("#api-keys")
    expect(keys.get_by_role("heading", name="API keys")).to_be_visible()
    expect(keys.locator("#api-key-list")).to_have_text("No API keys yet.")
    expect(keys.locator("#no-key-modes")).to_have_text(
        "Connect Polar first: a key reads one of the workspace's Polar connections."
    )
    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.locator("#dotenv")).to_contain_text("POLAR_SERVER=sandbox")

    # A new key, named, expiring in 90 days.
    keys.get_by_label("Name").fill("Production server")
    expect(keys.get_by_label("Mode")).to_have_value("test")
    keys.get_by_label("Expires").select_option(label="In 90 days")
    keys.get_by_role("button", name="Create API key").click()

    expect(page.get_by_role("heading", name="API key created")).to_be_visible()
    expect(page.locator("#key-once")).to_contain_text("this is the only time it is shown")
    field = page.get_by_label(re.compile("^Production server"))
    key = field.input_value()
    assert KEY_RE.match(key), key
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_platform.base_url)
    page.get_by_role("button", name="Copy key").click()
    expect(page.locator(".copy-status")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == key
    shot(page, "api-key-created")
    assert_accessible(page)
    # Nowhere in the browser's cookies.
    assert all(key not in c["value"] for c in page.context.cookies())

    answer = _plans(live_platform, key)
    assert answer.status_code == 200, answer.text
    assert [p["id"] for p in answer.json()["plans"]] == ["free", "pro-monthly", "pro-yearly", "usage"]
    assert all(p["polar_product_id"] for p in answer.json()["plans"])

    # Back on the billing page: listed by its prefix, never shown again.
    page.get_by_role("link", name="Done: back to the billing page").click()
    row = keys.locator("tr.api-key").filter(has_text="Production server")
    expect(row).to_have_count(1)
    expect(row.locator("code")).to_have_text(key[:20] + "…")
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$"))  # just used
    assert key not in page.content()
    assert_accessible(page)
    shot(page, "billing-api-keys")
    if os.environ.get("PAGE_SHOTS"):  # the section alone, to review by eye
        keys.screenshot(path=PAGE_SHOTS / "billing-api-keys-section.png")

    # Revoke: asked first, then refused at once.
    row.get_by_role("link", name="Revoke Production server").click()
    expect(page.get_by_role("heading", name="Revoke the API key Production server?")).to_be_visible()
    shot(page, "api-key-revoke")
    assert_accessible(page)
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("status")).to_have_text(
        "The API key Production server is revoked: calls with it are refused from now on."
    )
    expect(row.locator(".key-status")).to_have_text(re.compile(r"^Revoked \d{4}-"))
    expect(row.get_by_role("link", name=re.compile("Revoke"))).to_have_count(0)

    refused = _plans(live_platform, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
