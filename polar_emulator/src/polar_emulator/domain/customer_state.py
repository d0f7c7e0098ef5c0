"""A customer's ``CustomerState`` and the ``customer.state_changed`` event."""

from __future__ import annotations

from typing import Any

from polar_emulator.domain.customer_meters import state_meters
from polar_emulator.domain.customers import serialize_customer
from polar_emulator.domain.grants import active_grants, serialize_state_grant
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import state_subscriptions
from polar_emulator.domain.webhooks.events import emit_event


def state_benefit_grants(store: Store, customer_id: str) -> list[dict[str, Any]]:
    return [serialize_state_grant(store, g) for g in active_grants(store, customer_id)]


def customer_state(store: Store, customer: dict[str, Any]) -> dict[str, Any]:
    """The ``CustomerState`` shape: the customer plus active subscriptions, grants and meters."""
    state = serialize_customer(customer)
    state["active_subscriptions"] = state_subscriptions(store, customer["id"])
    state["granted_benefits"] = state_benefit_grants(store, customer["id"])
    state["active_meters"] = state_meters(store, customer)
    return state


def emit_state_changed(store: Store, customer: dict[str, Any]) -> None:
    emit_event(store, customer["organization_id"], "customer.state_changed", customer_state(store, customer))
