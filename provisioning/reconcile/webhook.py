"""Ensure one webhook endpoint at this integration's URL, found by URL before creating."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioning.reconcile.context import MAX_ROUNDS, Change, RunContext, as_plain, gave_up, still_ambiguous

SCOPE_READ, SCOPE_WRITE = "webhooks:read", "webhooks:write"
API_VERSION = "2026-10"

# The events the platform handles.
WEBHOOK_EVENTS = (
    "order.created",
    "order.paid",
    "subscription.created",
    "subscription.updated",
    "subscription.active",
    "subscription.canceled",
    "subscription.revoked",
    "customer.state_changed",
    "checkout.created",
    "checkout.updated",
    "product.updated",
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
    return ctx.api.list_all(
        ctx.api.sdk.webhooks.list_webhook_endpoints,
        action="list webhook endpoints",
        scope=SCOPE_READ,
        organization_id=ctx.organization_id,
    )


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
        return None, [
            Change(
                "create",
                "webhook_endpoint",
                ctx.webhook_url,
                f"create webhook endpoint {ctx.webhook_url}",
                body=body,
            )
        ]
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
        changes.append(
            Change(
                "update",
                "webhook_endpoint",
                ctx.webhook_url,
                f"update webhook endpoint {current.id}: {', '.join(sorted(update))}",
                current.id,
                update,
            )
        )
    return current, changes


def ensure(ctx: RunContext, actual: list[Any] | None = None) -> WebhookResult:
    actual = fetch(ctx) if actual is None else actual
    all_changes: list[Change] = []
    for _ in range(MAX_ROUNDS):
        current, changes = plan(ctx, actual)
        if not changes:
            break
        results = ctx.parallel([_writer(ctx, c) for c in changes])
        if not still_ambiguous(results):
            current = results[0]
            all_changes += changes
            break
        actual = fetch(ctx)
    else:
        raise gave_up("the webhook endpoint")
    assert current is not None
    action = (
        {"create": "created", "update": "updated"}.get(all_changes[0].action, "found")
        if all_changes
        else "found"
    )
    return WebhookResult(
        endpoint_id=current.id,
        secret=current.secret,
        changes=all_changes,
        polar_ids=[{"kind": "webhook_endpoint", "id": current.id, "action": action}],
    )


def _writer(ctx: RunContext, change: Change) -> Any:
    api = ctx.api
    if change.action == "create":
        return lambda: api.create(
            api.sdk.webhooks.create_webhook_endpoint,
            action="create the webhook endpoint",
            scope=SCOPE_WRITE,
            **change.body,
        )
    return lambda: api.write(
        api.sdk.webhooks.update_webhook_endpoint,
        change.polar_id,
        action="update the webhook endpoint",
        scope=SCOPE_WRITE,
        **change.body,
    )
