"""Catalog loading and validation: every error names the plan (or benefit/meter) and the field."""

from __future__ import annotations

import pytest

from provisioning.catalog import CatalogError, load_catalog, parse_catalog
from provisioning.catalog.desired import PLAN_KEY, product_body
from provisioning.config import DEFAULT_PLANS_FILE

PLAN = """
[[plans]]
id = "pro-monthly"
name = "Pro (monthly)"
interval = "month"
price = {{ type = "fixed", amount = {amount}, currency = "usd" }}
"""


def test_default_catalog_loads():
    catalog = load_catalog(DEFAULT_PLANS_FILE)
    assert [p.id for p in catalog.plans] == ["free", "pro-monthly", "pro-yearly", "usage"]
    assert catalog.plan("free").prices[0].amount == 0
    assert {b.type for b in catalog.benefits} == {"feature_flag", "custom", "meter_credit"}
    assert [m.id for m in catalog.meters] == ["api-calls"]
    assert len(catalog.revision) == 12
    assert catalog.required_scopes() == [
        "openid",
        "email",
        "organizations:read",
        "organizations:write",
        "products:read",
        "products:write",
        "benefits:read",
        "benefits:write",
        "meters:read",
        "meters:write",
        "webhooks:read",
        "webhooks:write",
        "checkouts:write",
        "customer_sessions:write",
        "customers:read",
        "subscriptions:read",
        "orders:read",
        "events:write",
    ]


def test_scopes_follow_the_catalog():
    scopes = parse_catalog(PLAN.format(amount=100)).required_scopes()
    assert "benefits:write" not in scopes and "meters:write" not in scopes and "webhooks:write" in scopes
    assert "checkouts:write" in scopes  # the tenant API's runtime scopes, whatever the catalog


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[plans]\nid=", "not valid TOML"),
        (
            PLAN.format(amount=-5),
            "plan 'pro-monthly': price.amount must be a non-negative integer (cents), got -5",
        ),
        (
            PLAN.format(amount='"29"'),
            "plan 'pro-monthly': price.amount must be a non-negative integer (cents), got '29'",
        ),
        ('[[plans]]\nid = "free"\nname = "Free"\n', "plan 'free': price is required"),
        ('[[plans]]\nname = "Free"\nprice = { amount = 0 }\n', "plan #1: id is required"),
        (
            PLAN.format(amount=1).replace('"month"', '"fortnight"'),
            "plan 'pro-monthly': interval must be one of",
        ),
        (PLAN.format(amount=1).replace("usd", "USD"), "plan 'pro-monthly': price.currency must be"),
        (
            PLAN.format(amount=1) + 'benefits = ["nope"]\n',
            "plan 'pro-monthly': benefits refers to an unknown benefit 'nope'",
        ),
        (PLAN.format(amount=1) + PLAN.format(amount=2), "plan 'pro-monthly': id is defined more than once"),
        (
            PLAN.format(amount=1) + PLAN.format(amount=2).replace('"pro-monthly"', '"pro_monthly"'),
            "plan 'pro_monthly': id gives the same deploy variable POLAR_PRODUCT_PRO_MONTHLY as plan 'pro-monthly'",
        ),
        (
            PLAN.format(amount=1).replace('name = "Pro (monthly)"', 'name = "P"'),
            "plan 'pro-monthly': name must be",
        ),
        ("", "defines no plans"),
        (
            '[[benefits]]\nid = "x"\ntype = "meter_credit"\ndescription = "Credits"\nunits = 5\nmeter = "m"\n'
            + PLAN.format(amount=1),
            "benefit 'x': meter refers to an unknown meter 'm'",
        ),
        (
            '[[meters]]\nid = "m"\nname = "Meter"\nevent_name = "e"\naggregation = "sum"\n'
            + PLAN.format(amount=1),
            "meter 'm': property is required",
        ),
    ],
)
def test_errors_name_the_plan_and_the_field(text, message):
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert message in str(info.value)


def test_each_plan_names_its_deploy_variable():
    assert [p.env_name for p in load_catalog(DEFAULT_PLANS_FILE).plans] == [
        "POLAR_PRODUCT_FREE",
        "POLAR_PRODUCT_PRO_MONTHLY",
        "POLAR_PRODUCT_PRO_YEARLY",
        "POLAR_PRODUCT_USAGE",
    ]


def test_missing_file_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.toml")


def test_a_file_is_parsed_again_only_when_its_text_changed(tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text(PLAN.format(amount=2900))
    first = load_catalog(path)
    assert load_catalog(path) is first
    path.write_text(PLAN.format(amount=3900))  # the same size, at once: the text tells
    changed = load_catalog(path)
    assert changed.revision != first.revision
    assert changed.plans[0].prices[0].amount == 3900


def test_revision_is_stable_and_follows_content():
    a = parse_catalog(PLAN.format(amount=2900))
    b = parse_catalog("# a comment\n" + PLAN.format(amount=2900).replace("  ", " "))
    c = parse_catalog(PLAN.format(amount=3900))
    assert a.revision == b.revision
    assert a.revision != c.revision


def test_product_body_carries_identity_in_metadata():
    catalog = parse_catalog(PLAN.format(amount=2900))
    body = product_body(
        catalog.plans[0], {}, workspace_id="ws-1", revision=catalog.revision, organization_id="o"
    )
    assert body["metadata"] == {
        PLAN_KEY: "pro-monthly",
        "connect_polar_workspace": "ws-1",
        "connect_polar_revision": catalog.revision,
    }
    assert all(len(k) <= 40 for k in body["metadata"])
    assert body["prices"] == [{"amount_type": "fixed", "price_amount": 2900, "price_currency": "usd"}]
    assert body["recurring_interval"] == "month"
