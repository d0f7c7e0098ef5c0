"""A simulated purchase, as Polar records one when a customer pays a checkout."""

from __future__ import annotations

import copy
from typing import Any

from polar_emulator.clock import isoformat
from polar_emulator.domain.checkouts import new_checkout, serialize_checkout
from polar_emulator.domain.customer_state import emit_state_changed
from polar_emulator.domain.customers import get_or_create_by_external_id, serialize_customer
from polar_emulator.domain.grants import benefit_of, new_grant, serialize_grant_webhook
from polar_emulator.domain.orders import mark_paid, new_order, serialize_order
from polar_emulator.domain.store import Store
from polar_emulator.domain.subscriptions import new_subscription, serialize_subscription
from polar_emulator.domain.webhooks.events import emit_event
from polar_emulator.errors import not_found


def simulate_purchase(
    store: Store,
    organization_id: str,
    product_id: str,
    external_customer_id: str,
    base_url: str,
    customer_email: str | None = None,
) -> dict[str, Any]:
    """Buy ``product_id`` for the customer with ``external_customer_id``; returns the new ids.

    Emits, in order: customer.created (new customers only), checkout.created,
    checkout.updated, order.created, order.paid, subscription.created and
    subscription.active (recurring products), benefit_grant.created per benefit,
    customer.state_changed. Raises ``ApiError`` 404 for a product outside the organization.
    """
    product = store.collections["products"].get(product_id)
    if product is None or product.get("organization_id") != organization_id:
        raise not_found()
    customer, created = get_or_create_by_external_id(
        store, organization_id, external_customer_id, customer_email
    )

    def emit(event_type: str, data: dict[str, Any]) -> None:
        emit_event(store, organization_id, event_type, copy.deepcopy(data))

    if created:
        emit("customer.created", serialize_customer(customer))

    checkout = new_checkout(
        store, [product], base_url, customer=customer, external_customer_id=external_customer_id
    )
    emit("checkout.created", serialize_checkout(store, checkout))
    subscription = None
    if product.get("is_recurring"):
        subscription = new_subscription(store, customer, product, checkout_id=checkout["id"])
    checkout.update(status="succeeded", modified_at=isoformat(store.clock.now()))
    if subscription is not None:
        checkout["subscription_id"] = subscription["id"]
    emit("checkout.updated", serialize_checkout(store, checkout))

    order = new_order(store, customer, product, checkout_id=checkout["id"], subscription=subscription)
    emit("order.created", serialize_order(store, order))
    mark_paid(store, order)
    emit("order.paid", serialize_order(store, order))

    if subscription is not None:
        data = serialize_subscription(store, subscription)
        emit("subscription.created", data)
        emit("subscription.active", data)

    grant_ids = []
    for embedded in product.get("benefits", []):
        benefit = benefit_of(store, embedded["id"], embedded)
        grant = new_grant(
            store,
            customer,
            benefit,
            subscription_id=subscription["id"] if subscription else None,
            order_id=None if subscription else order["id"],
        )
        grant_ids.append(grant["id"])
        emit("benefit_grant.created", serialize_grant_webhook(store, grant))

    emit_state_changed(store, customer)
    return {
        "customer_id": customer["id"],
        "customer_created": created,
        "checkout_id": checkout["id"],
        "order_id": order["id"],
        "subscription_id": subscription["id"] if subscription else None,
        "benefit_grant_ids": grant_ids,
    }
