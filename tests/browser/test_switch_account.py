"""Switching Polar account is deliberate. The page names the connected account and organization; a
reconnect with another account asks first (Keep changes nothing); switching retires the old
organization: its products are listed as the previous organization's, deliveries still arriving
from it are acknowledged and ignored, deleting our endpoint there is retried when Polar failed it,
and the new organization's deliveries are recorded."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL, MULTI_ORG_USER_EMAIL
from polar_emulator.domain.store import collection
from sqlalchemy import func, select

from provisioning.connect import switch as switches
from provisioning.connect.models import PolarConnectionSwitch, SwitchCleanup
from provisioning.integrations.models import PolarIntegration
from provisioning.webhooks.models import PolarWebhookEvent
from tests.browser.live import LivePlatform, WorkspaceRef, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page


def _consent(page: Page, live_platform: LivePlatform, button: str, user: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(user)
    page.get_by_role("button", name="Allow").click()


def _connection(live_platform: LivePlatform, workspace: WorkspaceRef) -> dict[str, Any]:
    with live_platform.transaction() as session:
        integration = session.scalar(
            select(PolarIntegration).where(PolarIntegration.workspace_id == workspace.id)
        )
        assert integration is not None
        events = session.scalar(
            select(func.count())
            .select_from(PolarWebhookEvent)
            .where(PolarWebhookEvent.integration_id == integration.id)
        )
        return {
            "org_id": integration.polar_org_id,
            "endpoint_id": integration.webhook_endpoint_id,
            "product_id": next(
                m.polar_product_id for m in integration.product_mappings if m.plan_id == "pro-monthly"
            ),
            "events": events,
        }


def _purchase_answered(
    polar: httpx.Client, connection: dict[str, Any], customer: str
) -> list[dict[str, Any]]:
    """A customer buys in the connection's organization; returns the deliveries to its endpoint,
    once every event it raised was answered 2xx (Polar stops retrying)."""
    params = {"endpoint_id": connection["endpoint_id"]}
    before = {e["id"] for e in polar.get("/_emulator/webhook-events", params=params).json()}
    bought = polar.post(
        "/_emulator/simulate/purchase",
        json={
            "organization_id": connection["org_id"],
            "product_id": connection["product_id"],
            "external_customer_id": customer,
        },
    )
    assert bought.status_code == 201, bought.text
    deadline = time.monotonic() + 30
    while True:
        events = [
            e for e in polar.get("/_emulator/webhook-events", params=params).json() if e["id"] not in before
        ]
        ids = {e["id"] for e in events}
        deliveries = [
            d
            for d in polar.get("/_emulator/webhook-deliveries", params=params).json()
            if d["webhook_id"] in ids
        ]
        answered = {d["webhook_id"] for d in deliveries if d.get("http_code") == 202}
        if events and all(e["id"] in answered for e in events):
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.1)


def test_switching_polar_account_is_deliberate(page: Page, live_platform: LivePlatform) -> None:
    polar = httpx.Client(base_url=live_platform.polar.url, timeout=10)
    try:
        _switch(page, live_platform, polar)
    finally:
        polar.delete("/_emulator/faults")
        polar.close()


def _switch(page: Page, live_platform: LivePlatform, polar: httpx.Client) -> None:
    workspace = live_platform.create_owner("Switch Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Switch Workspace")
    badge = page.locator("#status-badge")
    _consent(page, live_platform, "Connect Polar", DEMO_USER_EMAIL)
    expect(badge).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.locator("#account")).to_have_text(DEMO_USER_EMAIL)
    expect(page.locator("#organization")).to_have_text("Demo Org demo-org")
    old = _connection(live_platform, workspace)

    # Reconnect with another Polar account: asked first; keeping changes nothing.
    _consent(page, live_platform, "Reconnect Polar", MULTI_ORG_USER_EMAIL)
    expect(page).to_have_url(re.compile(re.escape(f"/workspaces/{workspace.id}/polar/switch")))
    expect(page.get_by_role("heading", name="Switch Polar account?")).to_be_visible()
    expect(page.locator("#switch-from")).to_have_text(f"{DEMO_USER_EMAIL}, organization Demo Org")
    expect(page.locator("#switch-to")).to_contain_text(
        f"{MULTI_ORG_USER_EMAIL}, an organization you choose next (Acme, Acme Labs)"
    )
    expect(page.locator("#switch-effects")).to_contain_text(
        "removes our webhook endpoint from Demo Org, then revokes our access there"
    )
    shot(page, "switch-confirm")
    assert_accessible(page)
    page.get_by_role("button", name="Keep the current connection").click()
    expect(page.get_by_role("status")).to_have_text(
        "Nothing changed: the workspace stays connected as before."
    )
    expect(badge).to_have_text("Ready")
    expect(page.locator("#account")).to_have_text(DEMO_USER_EMAIL)

    # Again, and switch, while Polar fails to delete our endpoint in the old organization.
    fault = {"path": "/v1/webhooks/endpoints/*", "method": "DELETE", "status": 500}
    assert polar.post("/_emulator/faults", json=fault).status_code == 201
    # (Until the old organization's purchase below: the worker's sweeper retries the deletion too.)
    _consent(page, live_platform, "Reconnect Polar", MULTI_ORG_USER_EMAIL)
    page.get_by_role("button", name=f"Switch to {MULTI_ORG_USER_EMAIL}").click()
    expect(page.get_by_role("status")).to_have_text(
        "Polar account switched. Choose the organization to set up."
    )
    assert_accessible(page)  # the organization chooser
    page.get_by_role("radio", name=re.compile("^Acme Labs")).check()
    page.get_by_role("button", name="Set up billing here").click()
    expect(badge).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)
    expect(page.locator("#account")).to_have_text(MULTI_ORG_USER_EMAIL)
    expect(page.locator("#organization")).to_have_text("Acme Labs acme-labs")
    previous = page.locator("#previous-organization")
    expect(previous.get_by_role("heading")).to_have_text("Previous organization: Demo Org")
    expect(previous).to_contain_text("Removing our webhook endpoint there is still being retried")
    expect(previous.locator("tbody tr")).to_have_count(4)
    expect(previous.locator("tbody tr").first).to_contain_text("previous organization")
    assert old["endpoint_id"] in collection(live_platform.polar.store, "webhook_endpoints")
    new = _connection(live_platform, workspace)
    assert new["org_id"] != old["org_id"] and new["endpoint_id"] != old["endpoint_id"]

    # A customer buys in the old organization: Polar's deliveries to our old endpoint are
    # acknowledged, and nothing is recorded.
    deliveries = _purchase_answered(polar, old, "old-customer")
    assert {d["http_code"] for d in deliveries} == {202}
    assert _connection(live_platform, workspace)["events"] == new["events"]

    # In the new organization: recorded.
    _purchase_answered(polar, new, "new-customer")
    assert _connection(live_platform, workspace)["events"] > new["events"]
    page.reload()
    expect(page.locator("#webhook-events")).to_contain_text("received")

    # Polar works again: the sweeper's retry (here, at once, unless the worker's came first)
    # deletes the endpoint, then revokes the old grant.
    polar.delete("/_emulator/faults")
    # A sweeper holding the row makes this call skip it: then wait for that sweeper's commit.
    deadline = time.monotonic() + 30
    while True:
        with live_platform.transaction() as session:
            switches.retry_cleanups(session, live_platform.settings)
        with live_platform.transaction() as session:
            cleanups = [s.cleanup for s in session.scalars(select(PolarConnectionSwitch))]
        if cleanups != [SwitchCleanup.PENDING] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert cleanups == [SwitchCleanup.DONE]
    assert old["endpoint_id"] not in collection(live_platform.polar.store, "webhook_endpoints")
    page.reload()
    expect(previous).to_contain_text("Our webhook endpoint there was removed and our access revoked.")
    shot(page, "after-switch")
    assert_accessible(page)
