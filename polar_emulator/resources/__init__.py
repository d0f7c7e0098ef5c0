"""Polar's resource API under ``/v1``, one module per resource."""

from polar_emulator.resources import benefits, meters, organizations, products, webhook_deliveries, webhook_endpoints
from polar_emulator.resources import checkouts, customer_sessions, customers, events, purchases, subscriptions

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
]
