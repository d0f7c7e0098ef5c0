"""The hosted checkout page at a checkout's ``url``: the page, *Pay*, the purchase flow's events in
Polar's order (NOTES 10.2), the redirect to ``success_url``, and the cases Polar refuses."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
from polar.v2026_10 import Polar

from polar_emulator import EmulatorServer
from polar_emulator_tests import billing_helpers as bh
from polar_emulator_tests.billing_helpers import (
    check_deliveries,
    check_events,
    create_customer,
    new_checkout,
    pay,
    raised,
    webhook_endpoint,
)
from polar_emulator_tests.resource_helpers import call, fixed_price
from polar_emulator_tests.webhook_receiver import Receiver, wait_for

# Fixtures used by this module.
api_fixture, catalog_fixture, org_fixture, polar_fixture, token_fixture = bh.FIXTURES

RECURRING_PAY = [
    "checkout.updated",  # confirmed
    "customer.created",
    "customer.state_changed",
    "subscription.created",
    "subscription.active",
    "subscription.updated",
    "order.created",
    "order.updated",
    "order.paid",
    "checkout.updated",  # succeeded
    "benefit_grant.created",
    "benefit_grant.created",
    "customer.state_changed",  # debounced: one for the subscription and both grants
]


class _Page(HTMLParser):
    """The page's form controls, labels and text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[str] = []
        self.labels: dict[str, str] = {}
        self.forms: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._label_for: str | None = None
        self._in_button = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input":
            self.inputs.append(a)
        elif tag == "form":
            self.forms.append(a)
        elif tag == "label":
            self._label_for = a.get("for") or ""
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")
        elif tag in ("link", "script", "img") and (a.get("href") or a.get("src")):
            raise AssertionError(f"external asset: {tag} {a}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_button:
            self.buttons[-1] += data.strip()
        if self._label_for:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data.strip()

    @property
    def all_text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def test_the_page_shows_the_product_price_and_a_pay_button(
    control: httpx.Client, api: httpx.Client, catalog: dict[str, Any]
) -> None:
    checkout = new_checkout(api, [catalog["monthly"]["id"]], external_customer_id="u1")
    response = control.get(checkout["url"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = _Page(response.text)
    assert "Pro" in page.all_text and "15.00 USD per month" in page.all_text
    assert page.buttons == ["Pay 15.00 USD"]
    [form] = page.forms
    assert form["method"] == "post" and form["action"] == urlsplit(checkout["url"]).path
    email = next(i for i in page.inputs if i.get("name") == "customer_email")
    assert email["type"] == "email" and email["id"] == "customer_email" and "required" in email
    assert page.labels["customer_email"] == "Email"
    assert '<html lang="en">' in response.text


def test_pay_runs_polars_purchase_flow_and_redirects(
    control: httpx.Client,
    api: httpx.Client,
    polar: Polar,
    org: str,
    catalog: dict[str, Any],
    emulator: EmulatorServer,
) -> None:
    checkout = polar.checkouts.create(
        products=[catalog["monthly"]["id"]],
        external_customer_id="user_7",
        customer_email="ada@example.com",
        metadata={"workspace": "w7"},
        success_url="https://app.example/billing/done?checkout_id={CHECKOUT_ID}",
    )
    assert urlsplit(checkout.url).path == f"/checkout/{checkout.client_secret}"
    before = len(raised(emulator))
    response = pay(control, {"url": checkout.url}, customer_email="ada@example.com")
    assert response.headers["location"] == f"https://app.example/billing/done?checkout_id={checkout.id}"

    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == RECURRING_PAY
    assert all(e["organization_id"] == org for e in events)
    data = check_events(events)
    confirmed, succeeded = data["checkout.updated"]
    assert (confirmed["status"], succeeded["status"]) == ("confirmed", "succeeded")
    [customer] = data["customer.created"]
    assert (customer["email"], customer["external_id"]) == ("ada@example.com", "user_7")
    assert confirmed["customer_id"] == customer["id"]
    [sub] = data["subscription.created"]
    assert sub["status"] == "active" and sub["metadata"] == {"workspace": "w7"}
    assert data["subscription.active"] == data["subscription.updated"] == [sub]
    order_created, order_paid = data["order.created"][0], data["order.paid"][0]
    assert order_created["status"] == "paid" and order_created["modified_at"] is None  # born paid
    assert (
        order_paid["billing_reason"] == "subscription_create" and order_paid["subscription_id"] == sub["id"]
    )
    assert order_paid["metadata"] == {"workspace": "w7"} and order_paid["total_amount"] == 1500
    assert succeeded["subscription_id"] == sub["id"]
    assert [g["benefit"]["id"] for g in data["benefit_grant.created"]] == [
        catalog["support"]["id"],
        catalog["flag"]["id"],
    ]
    inline, debounced = data["customer.state_changed"]
    assert inline["active_subscriptions"] == [] and inline["granted_benefits"] == []
    assert [s["id"] for s in debounced["active_subscriptions"]] == [sub["id"]]
    assert len(debounced["granted_benefits"]) == 2

    # What the API shows afterwards, through the SDK.
    assert polar.checkouts.get(checkout.id).status == "succeeded"
    assert polar.subscriptions.get(sub["id"]).checkout_id == checkout.id
    [order] = polar.orders.list(checkout_id=checkout.id).items
    assert order.id == order_paid["id"] and order.status == "paid"
    assert polar.customers.get_external("user_7").email == "ada@example.com"
    # The page now says the checkout is complete, and paying again is refused.
    done = control.get(checkout.url)
    assert done.status_code == 200 and "This checkout has been paid." in done.text
    refused = pay(control, {"url": checkout.url}, status=403, customer_email="ada@example.com")
    assert "not open" in refused.text


def test_one_time_product_and_polars_confirmation_page(
    control: httpx.Client, api: httpx.Client, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    checkout = new_checkout(api, [catalog["one_time"]["id"]], customer_email="bo@example.com")
    before = len(raised(emulator))
    response = pay(control, checkout)
    assert response.headers["location"] == f"{emulator.url}/checkout/{checkout['client_secret']}/confirmation"
    events = raised(emulator)[before:]
    assert [e["type"] for e in events] == [
        "checkout.updated",
        "customer.created",
        "customer.state_changed",
        "order.created",
        "order.updated",
        "order.paid",
        "checkout.updated",
    ]
    data = check_events(events)
    assert (
        data["order.paid"][0]["billing_reason"] == "purchase"
        and data["order.paid"][0]["subscription"] is None
    )
    assert data["customer.created"][0]["external_id"] is None
    thanks = control.get(response.headers["location"])
    assert thanks.status_code == 200 and "Your payment was received." in thanks.text


def test_an_existing_customer_is_matched_by_email_and_updated(
    control: httpx.Client, api: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    existing = create_customer(api, org, email="cy@example.com", external_id=None)
    checkout = new_checkout(
        api,
        [catalog["one_time"]["id"]],
        external_customer_id="someone-else",
        customer_metadata={"plan": "lifetime"},
    )
    before = len(raised(emulator))
    pay(control, checkout, customer_email="cy@example.com")
    types = [e["type"] for e in raised(emulator)[before:]]
    assert types[:3] == ["checkout.updated", "customer.updated", "customer.state_changed"]
    customer = call(api, "GET", "/v1/customers/{id}", 200, path=f"/v1/customers/{existing['id']}")
    # Matched by email: used as is, its external_id is not set.
    assert customer["external_id"] is None and customer["metadata"] == {"plan": "lifetime"}


def test_a_checkout_linked_to_a_customer_needs_no_email(
    control: httpx.Client, api: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    customer = create_customer(api, org, email="ed@example.com", external_id="ed")
    checkout = new_checkout(api, [catalog["monthly"]["id"]], external_customer_id="ed")
    assert checkout["customer_id"] == customer["id"]
    page = _Page(control.get(checkout["url"]).text)
    assert not [i for i in page.inputs if i.get("name") == "customer_email"]
    assert "Email: ed@example.com" in page.all_text
    before = len(raised(emulator))
    pay(control, checkout)
    data = check_events(raised(emulator)[before:])
    assert data["customer.updated"][0]["id"] == customer["id"] and "customer.created" not in data
    assert data["subscription.created"][0]["customer_id"] == customer["id"]


def test_the_page_selects_among_the_checkouts_products(
    control: httpx.Client, api: httpx.Client, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    checkout = new_checkout(api, [catalog["monthly"]["id"], catalog["one_time"]["id"]])
    page = _Page(control.get(checkout["url"]).text)
    radios = [i for i in page.inputs if i.get("type") == "radio"]
    assert [r["value"] for r in radios] == [catalog["monthly"]["id"], catalog["one_time"]["id"]]
    before = len(raised(emulator))
    pay(control, checkout, customer_email="di@example.com", product_id=catalog["one_time"]["id"])
    events = raised(emulator)[before:]
    selected = events[0]
    assert selected["type"] == "checkout.updated" and selected["data"]["status"] == "open"
    assert selected["data"]["product_id"] == catalog["one_time"]["id"] and selected["data"]["amount"] == 9900
    check_events(events)
    got = call(api, "GET", "/v1/checkouts/{id}", 200, path=f"/v1/checkouts/{checkout['id']}")
    assert got["status"] == "succeeded" and got["total_amount"] == 9900 and got["subscription_id"] is None


def test_refusals_change_nothing(
    control: httpx.Client, api: httpx.Client, org: str, catalog: dict[str, Any], emulator: EmulatorServer
) -> None:
    monthly = catalog["monthly"]["id"]

    def refused(checkout: dict[str, Any], status: int, **form: str) -> str:
        before = len(raised(emulator))
        response = pay(control, checkout, status=status, **form)
        assert raised(emulator)[before:] == []
        assert emulator.store.collections["checkouts"][checkout["id"]]["status"] == "open"
        return response.text

    # No email: the form again, with an alert.
    checkout = new_checkout(api, [monthly])
    text = refused(checkout, 422)
    assert 'role="alert" id="error"' in text and "Field required" in text
    assert 'aria-describedby="error"' in text
    # The external id was kept on the checkout, and a customer with another email took it since.
    late = new_checkout(api, [monthly], external_customer_id="late")
    assert late["customer_id"] is None
    create_customer(api, org, email="owner@example.com", external_id="late")
    text = refused(late, 422, customer_email="new@example.com")
    assert "already exists but with a different email address" in text
    # One active subscription per customer.
    pay(control, late, customer_email="owner@example.com")  # matched by email: fine
    again = new_checkout(api, [monthly])
    assert "You already have an active subscription." in refused(
        again, 403, customer_email="owner@example.com"
    )
    # A product that is not the checkout's.
    assert "not part of this checkout" in refused(
        again, 422, customer_email="z@example.com", product_id=catalog["one_time"]["id"]
    )
    # Expired and unknown checkouts.
    emulator.store.clock.advance(3601)
    assert control.get(again["url"]).status_code == 410
    assert (
        "This checkout session has expired."
        in pay(control, again, status=410, customer_email="x@example.com").text
    )
    assert control.get(f"{emulator.url}/checkout/polar_c_nope").status_code == 404
    assert control.post(f"{emulator.url}/checkout/polar_c_nope").status_code == 404


def test_free_product(control: httpx.Client, api: httpx.Client, org: str, emulator: EmulatorServer) -> None:
    free = call(
        api,
        "POST",
        "/v1/products/",
        201,
        json={
            "name": "Free",
            "recurring_interval": "month",
            "prices": [fixed_price(0)],
            "organization_id": org,
        },
    )
    checkout = new_checkout(api, [free["id"]], external_customer_id="f1")
    assert "Pay 0.00 USD" in control.get(checkout["url"]).text
    before = len(raised(emulator))
    pay(control, checkout, customer_email="free@example.com")
    data = check_events(raised(emulator)[before:])
    assert data["order.paid"][0]["total_amount"] == 0 and data["subscription.created"][0]["amount"] == 0


def test_delivered_events_are_signed_and_load(
    control: httpx.Client, api: httpx.Client, org: str, catalog: dict[str, Any]
) -> None:
    receiver = Receiver().start()
    try:
        endpoint = webhook_endpoint(api, org, receiver.url, RECURRING_PAY)
        checkout = new_checkout(api, [catalog["monthly"]["id"]], external_customer_id="u9")
        pay(control, checkout, customer_email="u9@example.com")
        wait_for(lambda: len(receiver.received) >= len(RECURRING_PAY), what="checkout webhooks")
    finally:
        receiver.stop()
    assert sorted(check_deliveries(receiver.received, endpoint["secret"])) == sorted(RECURRING_PAY)
