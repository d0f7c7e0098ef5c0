"""Event forwarding in Chromium: the owner sets the endpoint URL of their app on the billing page,
sees the signing secret once, and the billing event then forwarded by the worker arrives at their
app signed with it; back on the billing page, and on the delivery log, the delivery is listed.
Every page on the way is accessible (axe-core)."""

from __future__ import annotations

import os
import re
import time

from playwright.sync_api import Page, expect
from polar_emulator.config import DEMO_USER_EMAIL
from standardwebhooks import Webhook

from provisioning.forwarding import service as forwarding
from provisioning.forwarding.models import DeliveryStatus
from provisioning.integrations.service import get_integration
from tests.browser.live import PAGE_SHOTS, LivePlatform, assert_accessible, shot
from tests.browser.test_owner_connect import PROVISIONING_TIMEOUT_MS, consent_page_reached, open_billing_page
from tests.provisioning.forwarding.support import processed_event, tenant_app

SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


def test_an_owner_sets_an_endpoint_sees_the_secret_once_and_then_the_delivery_log(
    page: Page, live_platform: LivePlatform
) -> None:
    workspace = live_platform.create_owner("Forwarding Workspace")
    live_platform.sign_in(page, workspace.owner.email)
    open_billing_page(page, "Forwarding Workspace")
    section = page.locator("#event-forwarding")
    expect(section.get_by_role("heading", name="Event forwarding")).to_be_visible()
    page.get_by_role("button", name="Connect Polar", exact=True).click()
    consent_page_reached(page, live_platform)
    page.get_by_role("group", name="Signed in as").get_by_role("combobox").select_option(DEMO_USER_EMAIL)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#status-badge")).to_have_text("Ready", timeout=PROVISIONING_TIMEOUT_MS)

    with tenant_app() as tenant:
        section.get_by_label("Endpoint URL").fill(tenant.url)
        section.get_by_role("button", name="Save and show the secret").click()

        expect(page.get_by_role("heading", name="Event forwarding is set up")).to_be_visible()
        expect(page.locator("#secret-once")).to_contain_text("this is the only time it is shown")
        secret = page.get_by_label(re.compile("^Signing secret for")).input_value()
        assert SECRET_RE.match(secret), secret
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_platform.base_url)
        page.get_by_role("button", name="Copy secret").click()
        expect(page.locator(".copy-status")).to_have_text("Copied.")
        assert page.evaluate("() => navigator.clipboard.readText()") == secret
        shot(page, "forwarding-secret")
        assert_accessible(page)
        assert all(secret not in c["value"] for c in page.context.cookies())

        # Billing processes an event of the connection: the worker forwards it to the tenant's app.
        with live_platform.transaction() as session:
            integration = get_integration(session, workspace.id, "sandbox")
            assert integration is not None
            integration_id = integration.id
            event, payload = processed_event(session, integration_id, "subscription.active")
            forwarding.record(
                session, live_platform.settings, integration, event.id, "subscription.active", payload
            )
        deadline = time.monotonic() + 30
        while True:  # the worker records the delivery right after the app answered
            with live_platform.transaction() as session:
                delivery = next(
                    d
                    for d in forwarding.deliveries_of(session, integration_id)
                    if d.webhook_event_id == event.id
                )
            if delivery.status is DeliveryStatus.DELIVERED:
                break
            assert time.monotonic() < deadline, delivery.status
            time.sleep(0.05)
        (request,) = [r for r in tenant.received if r.headers["webhook-id"] == delivery.id]
        assert Webhook(secret).verify(request.body, request.headers) == payload

    # Back on the billing page: the endpoint and its latest delivery, never the secret again.
    page.get_by_role("link", name="Done: back to the billing page").click()
    expect(section.locator("#forwarding-url")).to_have_text(tenant.url)
    expect(section.locator("#forwarding-state")).to_have_text("Enabled")
    row = section.locator("tr.delivery").filter(has_text="subscription.active")
    expect(row).to_have_count(1)
    expect(row.locator(".delivery-status")).to_contain_text("Delivered")
    expect(row.locator(".delivery-answer")).to_have_text("HTTP 200")
    assert secret not in page.content()
    assert_accessible(page)
    shot(page, "billing-event-forwarding")
    if os.environ.get("PAGE_SHOTS"):  # the section alone, to review by eye
        section.screenshot(path=PAGE_SHOTS / "billing-event-forwarding-section.png")

    # The delivery log: the same delivery, with Redeliver for the owner.
    section.get_by_role("link", name="Delivery log of test mode").click()
    expect(page.get_by_role("heading", name="Delivery log")).to_be_visible()
    logged = page.locator("tr.delivery").filter(has_text="subscription.active")
    expect(logged.locator(".delivery-status")).to_contain_text("Delivered")
    expect(logged.locator(".delivery-attempts")).to_have_text("1")
    expect(logged.get_by_role("button", name=re.compile("^Redeliver subscription.active"))).to_be_visible()
    assert secret not in page.content()
    assert_accessible(page)
    shot(page, "forwarding-delivery-log")

    # Rotating asks first, saying what the overlap does; cancelling changes nothing.
    page.get_by_role("link", name="Back to the billing page").click()
    section.get_by_role("link", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="Rotate the signing secret?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("For 24 hours the current secret keeps signing every event")
    assert_accessible(page)
    shot(page, "forwarding-rotate")
    page.get_by_role("link", name="Cancel").click()
    expect(section.locator("#forwarding-secret-state")).not_to_contain_text("previous secret")
