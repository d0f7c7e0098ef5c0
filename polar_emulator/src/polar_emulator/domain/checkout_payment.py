"""Paying a checkout on its hosted page, as Polar runs it (NOTES 10.1 and 10.2).

Events, in the order Polar creates them:

1. ``checkout.updated`` (``open``) when the page changes the selected product;
2. confirm: ``checkout.updated`` (``confirmed``);
3. the customer job: ``customer.created`` (or ``customer.updated``) and ``customer.state_changed``;
4. payment success, one transaction: ``subscription.created`` (``active``),
   ``subscription.active``, ``subscription.updated`` for a recurring product; ``order.created``
   (born ``paid``), ``order.updated``, ``order.paid``; ``checkout.updated`` (``succeeded``);
5. jobs: ``benefit_grant.created`` per benefit, then one (debounced) ``customer.state_changed``.

Polar orders nothing across its jobs: ``customer.*`` may reach an endpoint after
``subscription.created``, and grants come whenever their jobs run.
"""

from __future__ import annotations

from typing import Any

from polar_emulator.domain.benefit_jobs import grant_product_benefits, reset_subscription_meters
from polar_emulator.domain.checkouts import is_expired, select_product, serialize_checkout
from polar_emulator.domain.customers import (
    customers_of,
    find_by_email,
    find_by_external_id,
    new_customer,
    serialize_customer,
)
from polar_emulator.domain.flow import Flow
from polar_emulator.domain.orders import mark_paid, new_order, serialize_order
from polar_emulator.domain.store import Store, now
from polar_emulator.domain.subscriptions import (
    ACTIVE_STATUSES,
    new_subscription,
    serialize_subscription,
    subscriptions_of,
)
from polar_emulator.errors import ApiError, polar_error, validation_error, validation_item


def expired_error() -> ApiError:
    return polar_error(410, "ResourceUnavailable", "This checkout session has expired.")


def not_open_error() -> ApiError:
    return polar_error(403, "NotOpenCheckout", "Checkout is not open.")


def _resolve_customer(
    store: Store, checkout: dict[str, Any], email: str | None
) -> tuple[dict[str, Any] | None, str]:
    """The customer the confirm would use (None: a new one) and the email, as
    ``_create_or_update_customer``: the linked customer, else a match by email first, else the
    external id (which must not belong to someone else)."""
    organization_id = checkout["organization_id"]
    if checkout["customer_id"] is not None:
        customer = customers_of(store).get(checkout["customer_id"])
        if customer is not None and customer["deleted_at"] is None:
            return customer, customer["email"] or email or ""
    email = (email or checkout["customer_email"] or "").strip()
    if not email:
        raise validation_error(validation_item(["body", "customer_email"], "Field required", "missing", None))
    if "@" not in email or "." not in email.rpartition("@")[2]:
        raise validation_error(
            validation_item(
                ["body", "customer_email"], "value is not a valid email address", "value_error", email
            )
        )
    by_email = find_by_email(store, organization_id, email)
    if by_email is not None:
        return by_email, email
    external_id = checkout["external_customer_id"]
    if external_id is not None and find_by_external_id(store, {organization_id}, external_id):
        raise validation_error(
            validation_item(
                ["body", "customer_email"],
                "A customer with this external ID already exists but with a different email address.",
                "value_error",
                email,
            )
        )
    return None, email


def _check_subscription_uniqueness(store: Store, customer: dict[str, Any] | None, product: dict) -> None:
    """One trialing, active or past-due subscription per customer (``allow_multiple_subscriptions``
    is off by default)."""
    if customer is None or not product.get("is_recurring"):
        return
    if any(
        s["customer_id"] == customer["id"] and s["status"] in ACTIVE_STATUSES
        for s in subscriptions_of(store).values()
    ):
        raise polar_error(403, "AlreadyActiveSubscriptionError", "You already have an active subscription.")


def pay_checkout(
    store: Store, checkout: dict[str, Any], *, customer_email: str | None, product_id: str | None = None
) -> dict[str, Any]:
    """Confirm ``checkout`` and let its payment succeed; returns the ids made and the event types.

    Raises ``ApiError``: 410 expired, 403 not open or an active subscription already, 422 a
    missing email, a product outside the checkout, or an external id taken by another email.
    Nothing changes and nothing is sent when it raises.
    """
    if is_expired(store, checkout):
        raise expired_error()
    if checkout["status"] != "open":
        raise not_open_error()
    products = store.collections["products"]
    product = products.get(product_id or checkout["product_id"])
    if product is None or product["id"] not in {p["id"] for p in checkout["products"]}:
        raise validation_error(
            validation_item(
                ["body", "product_id"], "Product is not part of this checkout.", "value_error", product_id
            )
        )
    customer, email = _resolve_customer(store, checkout, customer_email)
    _check_subscription_uniqueness(store, customer, product)

    flow = Flow(store, checkout["organization_id"])
    if product["id"] != checkout["product_id"]:
        select_product(store, checkout, product)
        flow.emit("checkout.updated", serialize_checkout(store, checkout))

    # Confirm: the customer is created or updated, the checkout is confirmed.
    created = customer is None
    if customer is None:
        customer = new_customer(
            store,
            checkout["organization_id"],
            email=email,
            external_id=checkout["external_customer_id"],
            name=checkout["customer_name"],
            metadata=checkout["customer_metadata"],
        )
    else:
        customer["metadata"] = {**customer["metadata"], **checkout["customer_metadata"]}
        customer["modified_at"] = now(store)
    checkout.update(
        status="confirmed",
        customer_id=customer["id"],
        customer_email=customer["email"],
        modified_at=now(store),
    )
    flow.emit("checkout.updated", serialize_checkout(store, checkout))
    flow.emit("customer.created" if created else "customer.updated", serialize_customer(customer))
    flow.state_changed_now(customer)

    # Payment success (handle_success), one transaction.
    subscription = None
    if product.get("is_recurring"):
        subscription = new_subscription(
            store, customer, product, checkout_id=checkout["id"], metadata=checkout["metadata"]
        )
        data = serialize_subscription(store, subscription)
        flow.emit("subscription.created", data)
        flow.emit("subscription.active", data)
        flow.emit("subscription.updated", data)
        flow.state_changed(customer)
    order = new_order(
        store,
        customer,
        product,
        checkout_id=checkout["id"],
        subscription=subscription,
        metadata=checkout["metadata"],
    )
    mark_paid(store, order)
    order["modified_at"] = None  # born paid: order.created already says so
    flow.emit("order.created", serialize_order(store, order))
    order["modified_at"] = now(store)
    flow.emit("order.updated", serialize_order(store, order))
    flow.emit("order.paid", serialize_order(store, order))
    checkout.update(status="succeeded", modified_at=now(store))
    if subscription is not None:
        checkout["subscription_id"] = subscription["id"]
    flow.emit("checkout.updated", serialize_checkout(store, checkout))

    # Jobs: the benefit grants, then the debounced state.
    if subscription is not None:
        reset_subscription_meters(flow, customer, subscription)
    grants = grant_product_benefits(
        flow,
        customer,
        product,
        subscription_id=subscription["id"] if subscription else None,
        order_id=None if subscription else order["id"],
    )
    types = flow.finish()
    return {
        "checkout_id": checkout["id"],
        "customer_id": customer["id"],
        "customer_created": created,
        "order_id": order["id"],
        "subscription_id": subscription["id"] if subscription else None,
        "benefit_grant_ids": [g["id"] for g in grants],
        "events": types,
    }
