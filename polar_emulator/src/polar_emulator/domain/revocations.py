"""Revoking subscriptions: they end now, their grants are revoked, and Polar's events follow."""

from __future__ import annotations

import copy
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.customer_state import emit_state_changed
from polar_emulator.domain.customers import customers_of
from polar_emulator.domain.grants import active_grants, revoke_grant, serialize_grant_webhook
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import serialize_subscription, subscriptions_of
from polar_emulator.domain.webhooks.events import emit_event


def revoke_subscription(store: Store, sub: dict[str, Any]) -> None:
    """End the subscription now, revoke its grants, and emit Polar's events in Polar's order."""
    now = isoformat(store.clock.now())
    sub.update(
        status="canceled",
        canceled_at=sub["canceled_at"] or now,
        ends_at=now,
        ended_at=now,
        cancel_at_period_end=False,
        modified_at=now,
    )
    org = sub["organization_id"]
    data = serialize_subscription(store, sub)
    emit_event(store, org, "subscription.updated", data)
    emit_event(store, org, "subscription.canceled", copy.deepcopy(data))
    emit_event(store, org, "subscription.revoked", copy.deepcopy(data))
    for grant in list(active_grants(store, sub["customer_id"])):
        if grant["subscription_id"] == sub["id"]:
            revoke_grant(store, grant)
            emit_event(store, org, "benefit_grant.revoked", serialize_grant_webhook(store, grant))
    emit_state_changed(store, customers_of(store)[sub["customer_id"]])


def revoke_customer_subscriptions(store: Store, customer: dict[str, Any]) -> None:
    for sub in list(subscriptions_of(store).values()):
        if sub["customer_id"] == customer["id"] and sub["ended_at"] is None:
            revoke_subscription(store, sub)
