"""The control API's billing lifecycle: what Polar's scheduler, Stripe and a merchant's dashboard
do to subscriptions and orders, on demand (see ``domain/renewals.py``,
``domain/subscription_updates.py`` and ``domain/refunds.py`` for the events, in Polar's order).

- ``POST /_emulator/subscriptions/{id}/renew`` ``{payment?: "succeeded"|"failed"}``: the period
  ends now. Active: a new period and a renewal order (``subscription_cycle``), paid or, when the
  payment fails, left pending with the subscription ``past_due``. Set to cancel at period end:
  it ends. Past due: the retry succeeds (``payment: "failed"`` is a 409).
- ``POST /_emulator/subscriptions/{id}/past-due``: a renewal whose payment fails.
- ``POST /_emulator/subscriptions/{id}/cancel`` ``{at_period_end?, reason?, comment?}``: the
  customer cancels at the period end (the default), or the merchant revokes it now
  (``at_period_end: false``; pending orders are voided, as when dunning gives up).
- ``POST /_emulator/orders/{id}/refund`` ``{amount?, reason?, comment?, revoke_benefits?,
  metadata?}``: a refund that succeeds at once (default: all that is left).

Each answers the object(s) changed, in their API shapes, and ``events``: the webhook event types
raised, in order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request

from polar_emulator.auth import get_store
from polar_emulator.domain.orders import orders_of, serialize_order
from polar_emulator.domain.refunds import refund_order, serialize_refund
from polar_emulator.domain.renewals import renew
from polar_emulator.domain.revocations import revoke_subscription
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscription_updates import already_canceled, cancel_at_period_end, is_ended
from polar_emulator.domain.subscriptions import serialize_subscription, subscriptions_of
from polar_emulator.errors import not_found

router = APIRouter(prefix="/_emulator", tags=["emulator"])


def _subscription(store: Store, id: str) -> dict[str, Any]:
    sub = subscriptions_of(store).get(id)
    if sub is None:
        raise not_found()
    return sub


def _answer(store: Store, sub: dict[str, Any], events: list[str]) -> dict[str, Any]:
    orders = [o for o in orders_of(store).values() if o["subscription_id"] == sub["id"]]
    latest = max(orders, key=lambda o: o["created_at"], default=None)
    return {
        "subscription": serialize_subscription(store, sub),
        "order": serialize_order(store, latest) if latest is not None else None,
        "events": events,
    }


class RenewIn(BaseModel):
    payment: Literal["succeeded", "failed"] = "succeeded"


@router.post("/subscriptions/{id}/renew")
async def renew_subscription(request: Request, id: str, body: RenewIn | None = None) -> dict[str, Any]:
    store = get_store(request)
    sub = _subscription(store, id)
    events = renew(store, sub, payment_succeeds=(body or RenewIn()).payment == "succeeded")
    return _answer(store, sub, events)


@router.post("/subscriptions/{id}/past-due")
async def make_past_due(request: Request, id: str) -> dict[str, Any]:
    store = get_store(request)
    sub = _subscription(store, id)
    return _answer(store, sub, renew(store, sub, payment_succeeds=False))


class CancelIn(BaseModel):
    at_period_end: bool = True
    reason: (
        Literal[
            "too_expensive",
            "missing_features",
            "switched_service",
            "unused",
            "customer_service",
            "low_quality",
            "too_complex",
            "other",
        ]
        | None
    ) = None
    comment: str | None = None


@router.post("/subscriptions/{id}/cancel")
async def cancel_subscription(request: Request, id: str, body: CancelIn | None = None) -> dict[str, Any]:
    store = get_store(request)
    sub = _subscription(store, id)
    body = body or CancelIn()
    if body.at_period_end:
        events = cancel_at_period_end(store, sub, reason=body.reason, comment=body.comment)
    else:
        if is_ended(sub):
            raise already_canceled()
        events = revoke_subscription(store, sub, reason=body.reason, comment=body.comment)
    return _answer(store, sub, events)


class RefundIn(BaseModel):
    amount: Annotated[int, Field(gt=0)] | None = None
    reason: Literal[
        "duplicate",
        "fraudulent",
        "customer_request",
        "service_disruption",
        "satisfaction_guarantee",
        "dispute_prevention",
        "other",
    ] = "customer_request"
    comment: str | None = None
    revoke_benefits: bool = False
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


@router.post("/orders/{id}/refund", status_code=201)
async def refund(request: Request, id: str, body: RefundIn | None = None) -> dict[str, Any]:
    store = get_store(request)
    order = orders_of(store).get(id)
    if order is None:
        raise not_found()
    body = body or RefundIn()
    made, events = refund_order(
        store,
        order,
        amount=body.amount,
        reason=body.reason,
        comment=body.comment,
        revoke_benefits=body.revoke_benefits,
        metadata=body.metadata,
    )
    return {"refund": serialize_refund(made), "order": serialize_order(store, order), "events": events}
