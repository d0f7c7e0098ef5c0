"""Ensure one webhook endpoint at this integration's URL, found by URL before creating."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.reconcile.context import Change, RunContext, as_plain
from provisioning.reconcile.resource import DONE, Resource, converge

SCOPE_READ, SCOPE_WRITE = "webhooks:read", "webhooks:write"
ENDPOINT = Resource(
    "webhook_endpoint",
    "webhook endpoints",
    "webhooks",
    SCOPE_READ,
    SCOPE_WRITE,
    list_method="list_webhook_endpoints",
    create_method="create_webhook_endpoint",
    update_method="update_webhook_endpoint",
    by_workspace=False,
    keyed=False,
)
API_VERSION = "2026-10"

# The events the platform handles.
WEBHOOK_EVENTS = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.state_changed",
    "subscription.created",
    "subscription.updated",
    "subscription.active",
    "subscription.canceled",
    "subscription.uncanceled",
    "subscription.revoked",
    "subscription.past_due",
    "subscription.cycled",
    "order.created",
    "order.updated",
    "order.paid",
    "order.refunded",
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.cycled",
    "benefit_grant.revoked",
    "checkout.created",
    "checkout.updated",
    "product.updated",
    "benefit.updated",
)


@dataclass
class WebhookResult:
    endpoint_id: str
    secret: str
    changes: list[Change]
    polar_ids: list[dict[str, str]]

    def __repr__(self) -> str:  # never print the secret
        return f"WebhookResult(endpoint_id={self.endpoint_id!r}, changes={len(self.changes)})"


def fetch(ctx: RunContext) -> list[Any]:
    return ENDPOINT.fetch(ctx)


def plan(ctx: RunContext, actual: list[Any]) -> tuple[Any | None, list[Change]]:
    found = sorted((e for e in actual if e.url == ctx.webhook_url), key=lambda e: e.created_at)
    if not found:
        body = {
            "url": ctx.webhook_url,
            "name": "Connect Polar",
            "format": "raw",
            "events": list(WEBHOOK_EVENTS),
            "api_version": API_VERSION,
            "organization_id": ctx.organization_id,
        }
        return None, [ENDPOINT.create_change(ctx.webhook_url, body=body)]
    current = found[0]
    update: dict[str, Any] = {}
    if set(as_plain(current.events)) != set(WEBHOOK_EVENTS):
        update["events"] = list(WEBHOOK_EVENTS)
    if not current.enabled:
        update["enabled"] = True
    if str(as_plain(current.format)) != "raw":
        update["format"] = "raw"
    changes = []
    if update:
        changes.append(ENDPOINT.update_change(ctx.webhook_url, current.id, update, ", ".join(sorted(update))))
    return current, changes


def ensure(ctx: RunContext, actual: list[Any] | None = None) -> WebhookResult:
    rounds = converge(ctx, ENDPOINT, actual, lambda a: plan(ctx, a), fetch=fetch)
    current = rounds.last[0][1] if rounds.last else rounds.state
    assert current is not None
    changes = [c for c, _ in rounds.written]
    action = DONE[changes[0].action] if changes else "found"
    return WebhookResult(
        endpoint_id=current.id,
        secret=current.secret,
        changes=changes,
        polar_ids=[{"kind": "webhook_endpoint", "id": current.id, "action": action}],
    )
