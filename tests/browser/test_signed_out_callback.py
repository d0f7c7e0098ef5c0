"""Coming back from Polar signed out: the sign-in page (its URL names no code or state), then the
connect finishes by itself; or, signed out on purpose, one click starts it again."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL
from sqlalchemy import update

from app.accounts.models import UserSession
from provisioning.db import utcnow
from tests.browser.live import PASSWORD, LivePlatform, WorkspaceRef, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


def _to_consent(page: Page, live_platform: LivePlatform, workspace: WorkspaceRef) -> None:
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, workspace.name)
    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)


def _allow_and_sign_in(page: Page, live_platform: LivePlatform, workspace: WorkspaceRef) -> None:
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(f"{live_platform.base_url}/login?next=/polar/resume")
    assert "code=" not in page.url and "state=" not in page.url
    expect(page.get_by_role("status")).to_have_text("Sign in to finish connecting Polar.")
    shot(page, "signed-out-callback-login")
    page.get_by_label("Email").fill(workspace.owner.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_signed_out_owner_signs_in_and_the_connect_finishes(
    page: Page, live_platform: LivePlatform
) -> None:
    workspace = live_platform.create_owner("Lapsed Workspace")
    _to_consent(page, live_platform, workspace)
    # While the owner reads Polar's consent page, their sign-in ends (expired, revoked elsewhere).
    with live_platform.transaction() as session:
        session.execute(
            update(UserSession).where(UserSession.user_id == workspace.owner.id).values(revoked_at=utcnow())
        )
    _allow_and_sign_in(page, live_platform, workspace)

    expect(page).to_have_url(f"{live_platform.base_url}/workspaces/{workspace.id}/polar")
    expect(page.get_by_role("status")).to_have_text("Polar is connected. Setting up your billing now.")
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)


def test_signed_out_on_purpose_the_connect_restarts_with_one_click(
    page: Page, live_platform: LivePlatform
) -> None:
    workspace = live_platform.create_owner("Signed Out Workspace")
    _to_consent(page, live_platform, workspace)
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Sign out").click()
    expect(other_tab.get_by_role("button", name="Sign in")).to_be_visible()
    other_tab.close()
    _allow_and_sign_in(page, live_platform, workspace)

    expect(page.get_by_role("heading", name="Polar connection failed")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        "You were signed out while Polar asked for your consent, and this browser no longer holds the "
        "connect you started, so it could not be finished. Connect again: it takes one click."
    )
    shot(page, "signed-out-callback-restart")
    assert_accessible(page)
    page.get_by_role("button", name="Connect Polar again").click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(re.compile(re.escape(f"/workspaces/{workspace.id}/polar") + "$"))
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
