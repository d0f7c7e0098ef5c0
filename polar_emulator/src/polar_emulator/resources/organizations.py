"""Organizations: list, get, create and update (``/v1/organizations``).

``store.organizations`` holds each organization in its full API shape (Polar's ``Organization``
schema plus what polar-sdk 1.0.2 reads), so handlers return the dicts as they are.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import StringConstraints
from starlette.requests import Request

from polar_emulator.auth import AuthSubject, authenticate, get_store, note
from polar_emulator.clock import isoformat
from polar_emulator.errors import not_found, validation_error, validation_item
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import Body, Currency, TaxBehavior, now, sort_items
from polar_emulator.store import Store
from polar_emulator.tokens import new_id
from polar_emulator.webhooks.events import emit_event

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

READ = ("organizations:read", "organizations:write")
WRITE = ("organizations:write",)
SORTABLE = ("created_at", "slug", "name", "next_review_threshold", "days_in_status")

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
    store: Store, *, name: str, slug: str, default_presentment_currency: str = "usd", **fields: Any
) -> dict[str, Any]:
    """A new organization in its full API shape, active and able to take payments."""
    now_ = isoformat(store.clock.now())
    org: dict[str, Any] = {
        "created_at": now_,
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
        "details_submitted_at": now_,
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


def organization_or_404(request: Request, organization_id: UUID | str) -> dict[str, Any]:
    """An organization the caller's token reaches (authenticate first)."""
    store = get_store(request)
    org = store.organizations.get(str(organization_id))
    if org is None:
        raise not_found()
    return org


# -- request bodies --------------------------------------------------------------------------

Url = Annotated[str, StringConstraints(min_length=1, max_length=2083)]


class SocialLink(Body):
    platform: Literal[
        "x", "github", "facebook", "instagram", "youtube", "tiktok", "linkedin", "threads", "discord", "other"
    ]
    url: Url


class SubscriptionSettings(Body):
    allow_multiple_subscriptions: bool
    proration_behavior: Literal["invoice", "prorate", "next_period"]
    benefit_revocation_grace_period: int
    prevent_trial_abuse: bool
    allow_customer_updates: bool


class OrganizationCreate(Body):
    name: Annotated[str, StringConstraints(min_length=3)]
    slug: Annotated[str, StringConstraints(min_length=3, max_length=64)]
    avatar_url: Url | None = None
    email: str | None = None
    website: Url | None = None
    socials: list[SocialLink] | None = None
    subscription_settings: SubscriptionSettings | None = None
    default_presentment_currency: Currency = "usd"
    default_tax_behavior: TaxBehavior = "location"


class OrganizationUpdate(Body):
    name: Annotated[str, StringConstraints(min_length=3)] | None = None
    avatar_url: Url | None = None
    email: str | None = None
    website: Url | None = None
    socials: list[SocialLink] | None = None
    subscription_settings: SubscriptionSettings | None = None
    default_presentment_currency: Currency | None = None
    default_tax_behavior: TaxBehavior | None = None


# -- routes -------------------------------------------------------------------------------


def _reachable(request: Request, subject: AuthSubject, organization_id: UUID) -> dict[str, Any]:
    if str(organization_id) not in subject.organization_ids():
        raise not_found()
    note(request, organization_id=str(organization_id))
    return organization_or_404(request, organization_id)


@router.get("/")
async def list_organizations(request: Request, slug: str | None = Query(None)) -> dict:
    subject = authenticate(request, READ)
    store = get_store(request)
    items = [store.organizations[oid] for oid in subject.organization_ids()]
    if slug is not None:
        items = [org for org in items if org["slug"] == slug]
    return paginate(request, sort_items(request, items, SORTABLE))


@router.post("/", status_code=201)
async def create_organization(request: Request, body: OrganizationCreate) -> dict:
    subject = authenticate(request, WRITE)
    store = get_store(request)
    if any(org["slug"] == body.slug for org in store.organizations.values()):
        raise validation_error(
            validation_item(
                ["body", "slug"], "An organization with this slug already exists.", "value_error", body.slug
            )
        )
    fields = body.model_dump(exclude_none=True, mode="json")
    fields["socials"] = fields.get("socials", [])
    if "subscription_settings" in fields:
        fields["proration_behavior"] = fields["subscription_settings"]["proration_behavior"]
        fields["allow_customer_updates"] = fields["subscription_settings"]["allow_customer_updates"]
    org = store.add_organization(body.name, body.slug, owner=subject.user)
    org.update(fields)
    note(request, organization_id=org["id"])
    return org


@router.get("/{id}")
async def get_organization(request: Request, id: UUID) -> dict:
    return _reachable(request, authenticate(request, READ), id)


@router.patch("/{id}")
async def update_organization(request: Request, id: UUID, body: OrganizationUpdate) -> dict:
    subject = authenticate(request, WRITE)
    org = _reachable(request, subject, id)
    subject.require(org["id"], "organization:manage", "manage this organization")
    changes = body.model_dump(exclude_unset=True, exclude_none=True, mode="json")
    if "subscription_settings" in changes:
        changes["proration_behavior"] = changes["subscription_settings"]["proration_behavior"]
        changes["allow_customer_updates"] = changes["subscription_settings"]["allow_customer_updates"]
    org.update(changes)
    org["modified_at"] = now(get_store(request))
    emit_event(get_store(request), org["id"], "organization.updated", copy.deepcopy(org))
    return org
