"""Polar's resource API under ``/v1``, one module per resource."""

from polar_emulator.resources import (
    benefits,
    billing_control,
    checkouts,
    customer_meters,
    customer_sessions,
    customers,
    events,
    meters,
    orders,
    organizations,
    products,
    purchases,
    subscriptions,
    webhook_deliveries,
    webhook_endpoints,
)

ROUTERS = [
    organizations.router,
    products.router,
    benefits.router,
    meters.router,
    webhook_endpoints.router,
    webhook_deliveries.router,
]
ROUTERS += [
    customers.router,
    checkouts.router,
    customer_sessions.router,
    subscriptions.router,
    events.router,
    purchases.router,
    orders.router,
    customer_meters.router,
    billing_control.router,
]
