"""Organizations in their API shape.

``store.organizations`` holds each organization in its full API shape (Polar's ``Organization``
schema plus what polar-sdk 1.0.2 reads), so handlers return the dicts as they are.
"""

from __future__ import annotations

from typing import Any

from polar_emulator.tokens import new_id

_EMAIL_SETTINGS = [
    "order_confirmation",
    "payment_method_expiration_reminder",
    "subscription_cancellation",
    "subscription_confirmation",
    "subscription_cycled",
    "subscription_cycled_after_trial",
    "subscription_past_due",
    "subscription_paused",
    "subscription_resumed",
    "subscription_renewal_reminder",
    "subscription_revoked",
    "subscription_trial_conversion_reminder",
    "subscription_uncanceled",
    "subscription_updated",
]


def new_organization(
    created_at: str, *, name: str, slug: str, default_presentment_currency: str = "usd", **fields: Any
) -> dict[str, Any]:
    """A new organization in its full API shape, active and able to take payments."""
    org: dict[str, Any] = {
        "created_at": created_at,
        "modified_at": None,
        "id": new_id(),
        "name": name,
        "slug": slug,
        "avatar_url": None,
        "proration_behavior": "prorate",
        "allow_customer_updates": True,
        "email": None,
        "website": None,
        "socials": [],
        "status": "active",
        "details_submitted_at": created_at,
        "onboarding_resubmission_requested_at": None,
        "sso_enforced": False,
        "default_presentment_currency": default_presentment_currency,
        "default_tax_behavior": "location",
        "feature_settings": {
            "issue_funding_enabled": False,
            "seat_based_pricing_enabled": True,
            "wallets_enabled": False,
            "member_model_enabled": False,
            "checkout_localization_enabled": False,
            "overview_metrics": None,
            "reset_proration_behavior_enabled": False,
            "off_session_charges_enabled": False,
            "meter_cycling_enabled": False,
            "slack_benefit_enabled": False,
            "preview_access_enabled": False,
            "disputes_enabled": False,
            "sso_enabled": False,
            "dispute_auto_accept_enabled": False,
            "compass_enabled": False,
            "merchant_migration_enabled": False,
        },
        "subscription_settings": {
            "allow_multiple_subscriptions": False,
            "proration_behavior": "prorate",
            "benefit_revocation_grace_period": 0,
            "prevent_trial_abuse": False,
            "allow_customer_updates": True,
        },
        "customer_email_settings": dict.fromkeys(_EMAIL_SETTINGS, True),
        "customer_portal_settings": {
            "usage": {"show": True},
            "subscription": {"update_seats": True, "update_plan": True, "pause": False},
            "customer": {"allow_email_change": True},
        },
        "dispute_settings": {"auto_accept_below_amount": None},
        "embed_hosts": [],
        "embed_hosts_enforced": False,
        "country": None,
        "account_id": None,
        "payout_account_id": None,
        "capabilities": {
            "checkout_payments": True,
            "subscription_renewals": True,
            "payouts": True,
            "refunds": True,
            "api_access": True,
            "dashboard_access": True,
        },
    }
    org.update(fields)
    return org
