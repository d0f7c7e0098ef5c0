"""Polar's resource API under ``/v1``, one module per resource."""

from polar_emulator.resources import organizations, webhook_deliveries

ROUTERS = [organizations.router, webhook_deliveries.router]
