"""Subscriptions: list, get, update and revoke under ``/v1/subscriptions/``, kept as
``domain/subscriptions.py`` says; updates follow ``domain/subscription_updates.py``.

``PATCH`` takes one of Polar's ``SubscriptionUpdate`` shapes, each forbidding extra fields, so a
request carries one kind of change. Emulated: cancel at period end and uncancel
(``SubscriptionCancel``), revoke (``SubscriptionRevoke``), product change and metadata
(``SubscriptionUpdateBase``), clearing a pending update (``SubscriptionUpdateClear``). Seats,
billing-period, trial-end, pause and resume updates answer 501 ``NotImplemented``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from polar_emulator.auth import authenticate, get_store, list_organization_ids
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.revocations import revoke_subscription
from polar_emulator.domain.subscription_updates import (
    already_canceled,
    cancel_at_period_end,
    change_product,
    clear_pending_update,
    is_ended,
    uncancel,
    update_metadata,
)
from polar_emulator.domain.subscriptions import STATUSES, is_active, serialize_subscription, subscriptions_of
from polar_emulator.errors import ApiError, polar_error, validation_error, validation_item
from polar_emulator.pagination import paginate
from polar_emulator.resources.common import (
    Metadata,
    Resource,
    metadata_matches,
    metadata_query,
    query_bool,
    query_list,
    sort_by_keys,
)

SUBSCRIPTIONS = Resource("subscriptions")
router = SUBSCRIPTIONS.router
READ = SUBSCRIPTIONS.read


CancellationReason = Literal[
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "low_quality",
    "too_complex",
    "other",
]
ProrationBehavior = Literal["invoice", "prorate", "next_period", "reset"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionUpdateBase(_Strict):
    metadata: Metadata | None = None
    product_id: uuid.UUID | None = None
    proration_behavior: ProrationBehavior | None = None
    discount_id: uuid.UUID | None = None
    trial_end: datetime | Literal["now"] | None = None


class SubscriptionUpdateSeats(_Strict):
    seats: Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
    proration_behavior: ProrationBehavior | None = None


class SubscriptionUpdateBillingPeriod(_Strict):
    current_billing_period_end: datetime


class SubscriptionCancel(_Strict):
    customer_cancellation_reason: CancellationReason | None = None
    customer_cancellation_comment: str | None = None
    cancel_at_period_end: bool


class SubscriptionRevoke(_Strict):
    customer_cancellation_reason: CancellationReason | None = None
    customer_cancellation_comment: str | None = None
    revoke: Literal[True]


class SubscriptionPause(_Strict):
    pause_at_period_end: bool
    resumes_at: datetime | None = None


class SubscriptionResume(_Strict):
    resume: Literal[True]


class SubscriptionUpdateClear(_Strict):
    pending_update: None


SubscriptionUpdate = (
    SubscriptionUpdateBase
    | SubscriptionUpdateSeats
    | SubscriptionUpdateBillingPeriod
    | SubscriptionCancel
    | SubscriptionRevoke
    | SubscriptionPause
    | SubscriptionResume
    | SubscriptionUpdateClear
)


def _not_emulated(what: str) -> ApiError:
    return polar_error(501, "NotImplemented", f"The local Polar does not emulate {what}.")


# -- routes ----------------------------------------------------------------------------------


def _filter_values(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name)


@router.get("/")
async def list_subscriptions(request: Request) -> dict[str, Any]:
    subject = authenticate(request, READ)
    store = get_store(request)
    org_ids = list_organization_ids(request, subject)
    product_ids = _filter_values(request, "product_id")
    customer_ids = _filter_values(request, "customer_id")
    external_ids = _filter_values(request, "external_customer_id")
    statuses = query_list(request, "status", STATUSES)
    active = query_bool(request, "active")
    cancel_at_period_end = query_bool(request, "cancel_at_period_end")
    wanted_metadata = metadata_query(request)
    customers = customers_of(store)

    def keep(sub: dict[str, Any]) -> bool:
        customer = customers[sub["customer_id"]]
        return (
            sub["organization_id"] in org_ids
            and (not product_ids or sub["product_id"] in product_ids)
            and (not customer_ids or sub["customer_id"] in customer_ids)
            and (not external_ids or customer["external_id"] in external_ids)
            and (not statuses or sub["status"] in statuses)
            and (active is None or is_active(sub) is active)
            and (cancel_at_period_end is None or sub["cancel_at_period_end"] is cancel_at_period_end)
            and metadata_matches(sub["metadata"], wanted_metadata)
        )

    items = [s for s in subscriptions_of(store).values() if keep(s)]
    products = store.collections["products"]
    items = sort_by_keys(
        request,
        items,
        {
            "customer": lambda s: customers[s["customer_id"]]["email"] or "",
            "status": lambda s: s["status"],
            "started_at": lambda s: s["started_at"],
            "current_period_end": lambda s: s["current_period_end"],
            "ended_at": lambda s: s["ended_at"],
            "ends_at": lambda s: s["ends_at"],
            "amount": lambda s: s["amount"],
            "product": lambda s: (products.get(s["product_id"]) or {}).get("name", ""),
            "discount": lambda s: s["discount_id"],
        },
        default=("-started_at",),
    )
    return paginate(request, [serialize_subscription(store, s) for s in items])


@router.get("/{id}")
async def get_subscription(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    sub = SUBSCRIPTIONS.read_one(request, id)
    return serialize_subscription(get_store(request), sub)


@router.patch("/{id}")
async def update(
    request: Request, id: Annotated[uuid.UUID, Path()], body: SubscriptionUpdate
) -> dict[str, Any]:
    _, sub = SUBSCRIPTIONS.for_write(request, id)
    store = get_store(request)
    if isinstance(body, SubscriptionCancel):
        if body.cancel_at_period_end:
            cancel_at_period_end(
                store,
                sub,
                reason=body.customer_cancellation_reason,
                comment=body.customer_cancellation_comment,
            )
        else:
            uncancel(store, sub)
    elif isinstance(body, SubscriptionRevoke):
        if is_ended(sub):
            raise already_canceled()
        revoke_subscription(
            store, sub, reason=body.customer_cancellation_reason, comment=body.customer_cancellation_comment
        )
    elif isinstance(body, SubscriptionUpdateClear):
        clear_pending_update(store, sub)
    elif isinstance(body, SubscriptionUpdateBase):
        _update_base(store, sub, body)
    elif isinstance(body, SubscriptionUpdateSeats):
        raise _not_emulated("seat updates")
    elif isinstance(body, SubscriptionUpdateBillingPeriod):
        raise _not_emulated("billing period updates")
    else:
        raise _not_emulated("pausing and resuming subscriptions")
    return serialize_subscription(store, sub)


def _update_base(store: Any, sub: dict[str, Any], body: SubscriptionUpdateBase) -> None:
    given = body.model_fields_set
    if "discount_id" in given and body.discount_id is not None:
        raise validation_error(
            validation_item(
                ["body", "discount_id"], "Discount does not exist.", "value_error", str(body.discount_id)
            )
        )
    if "trial_end" in given and body.trial_end is not None:
        raise _not_emulated("trial changes")
    if body.product_id is not None:
        if body.metadata is not None:
            sub["metadata"] = dict(body.metadata)
        change_product(store, sub, str(body.product_id), body.proration_behavior)
    elif body.metadata is not None:
        update_metadata(store, sub, body.metadata)


@router.delete("/{id}")
async def revoke(request: Request, id: Annotated[uuid.UUID, Path()]) -> dict[str, Any]:
    _, sub = SUBSCRIPTIONS.for_write(request, id)
    store = get_store(request)
    if sub["ended_at"] is not None or sub["status"] == "canceled":
        raise polar_error(403, "AlreadyCanceledSubscription", "This subscription is already canceled.")
    revoke_subscription(store, sub)
    return serialize_subscription(store, sub)
