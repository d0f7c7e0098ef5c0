"""Organizations: list, get, create and update (``/v1/organizations``).

Organizations are kept in their API shape (see ``domain/organizations.py``), so handlers return
the dicts as they are.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import StringConstraints
from starlette.requests import Request

from polar_emulator.auth import AuthSubject, authenticate, get_store, note
from polar_emulator.domain.store import now
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import not_found, validation_error, validation_item
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import Body, Currency, TaxBehavior, sort_items

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

READ = ("organizations:read", "organizations:write")
WRITE = ("organizations:write",)
SORTABLE = ("created_at", "slug", "name", "next_review_threshold", "days_in_status")


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
