"""Delivering webhook events over HTTP, with Polar's retries, backoff and auto-disable.

Each event runs as one asyncio task on the server's event loop: an attempt, then on failure a
backoff sleep (Polar's schedule times ``config.webhook_retry_scale``), up to 10 attempts. Store
reads and writes never straddle an ``await``.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from polar_emulator.clock import isoformat
from polar_emulator.domain.store import Store
from polar_emulator.domain.webhooks.models import (
    WebhookDelivery,
    WebhookEvent,
    WebhookState,
    get_state,
    is_current,
)
from polar_emulator.domain.webhooks.signing import delivery_headers
from polar_emulator.tokens import new_id

MAX_ATTEMPTS = 10  # WEBHOOK_MAX_RETRIES: total HTTP attempts per event
FAILURE_THRESHOLD = 10  # WEBHOOK_FAILURE_THRESHOLD: consecutive failed events before disabling
BACKOFF_FACTOR_MS = 2000
MAX_BACKOFF_MS = 20 * 60_000
RESPONSE_LIMIT = 2048

_clients: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}


def backoff_ms(attempt: int) -> float:
    """Dramatiq's ``compute_backoff`` after failed attempt ``attempt``: jittered in [50%, 100%]."""
    full = min(BACKOFF_FACTOR_MS * 2**attempt, MAX_BACKOFF_MS)
    return full / 2 + random.uniform(0, full / 2)


def http_client() -> httpx.AsyncClient:
    """The one delivery client of the running event loop."""
    loop = asyncio.get_running_loop()
    cached = _clients.get(id(loop))
    if cached is not None and cached[0] is loop:
        return cached[1]
    client = httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    _clients[id(loop)] = (loop, client)
    return client


def endpoint_of(store: Store, endpoint_id: str) -> dict[str, Any] | None:
    """The live (not deleted) endpoint dict, or None."""
    endpoint = store.collections["webhook_endpoints"].get(endpoint_id)
    if endpoint is None or endpoint.get("deleted_at"):
        return None
    return endpoint


def schedule(store: Store, event: WebhookEvent, *, redeliver: bool = False) -> bool:
    """Start delivering ``event`` on the running loop; False when there is no running loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    state = get_state(store)
    task = loop.create_task(deliver(store, state, event, redeliver=redeliver), name=f"webhook-{event.id}")
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return True


async def deliver(store: Store, state: WebhookState, event: WebhookEvent, *, redeliver: bool = False) -> None:
    """Attempt, back off and retry until success, 10 attempts, a disabled endpoint or a reset."""
    while is_current(store, state):
        endpoint = endpoint_of(store, event.endpoint_id)
        if endpoint is None:
            return
        if not endpoint.get("enabled", True):
            event.skipped = True
            return
        if event.payload is None or (event.succeeded and not redeliver):
            return
        event.skipped = False
        url, secret = endpoint["url"], endpoint["secret"]
        delivery = await attempt(store, event, url, secret, redelivery=redeliver)
        if not is_current(store, state):
            return
        record(store, state, event, delivery)
        if delivery.succeeded:
            return
        if event.delivery_count >= MAX_ATTEMPTS:
            on_event_failed(store, state, event)
            return
        delay = backoff_ms(event.delivery_count) / 1000 * store.config.webhook_retry_scale
        await asyncio.sleep(delay)


async def attempt(
    store: Store, event: WebhookEvent, url: str, secret: str, *, redelivery: bool
) -> WebhookDelivery:
    """One signed POST of the stored payload; never raises for HTTP or network failures."""
    assert event.payload is not None
    timestamp = int(time.time())
    headers = delivery_headers(secret, event.id, timestamp, event.payload)
    http_code: int | None = None
    response: str | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        resp = await http_client().post(
            url, content=event.payload.encode(), headers=headers, timeout=store.config.webhook_timeout
        )
        http_code = resp.status_code
        text = resp.text.replace("\x00", "")[:RESPONSE_LIMIT]
        response = text or None
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        response = error
    except OSError as exc:  # e.g. ssl.SSLError outside httpx's mapping
        error = f"{type(exc).__name__}: {exc}"
        response = error
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return WebhookDelivery(
        id=new_id(),
        created_at=isoformat(store.clock.now()),
        event_id=event.id,
        endpoint_id=event.endpoint_id,
        attempt=event.delivery_count + 1,
        webhook_timestamp=timestamp,
        http_code=http_code,
        response=response,
        error=error,
        succeeded=http_code is not None and 200 <= http_code < 300,
        duration_ms=duration_ms,
        redelivery=redelivery,
    )


def record(store: Store, state: WebhookState, event: WebhookEvent, delivery: WebhookDelivery) -> None:
    """Save an attempt and its effect on the event."""
    state.deliveries.append(delivery)
    event.delivery_count += 1
    event.last_http_code = delivery.http_code
    event.modified_at = delivery.created_at
    if delivery.succeeded:
        event.succeeded = True


def on_event_failed(store: Store, state: WebhookState, event: WebhookEvent) -> None:
    """Final failure: disable the endpoint when its last 10 completed events all failed."""
    if event.succeeded is not True:
        event.succeeded = False
    mine = [e for e in state.events.values() if e.endpoint_id == event.endpoint_id]
    completed = sorted((e for e in mine if e.succeeded is not None), key=lambda e: e.seq, reverse=True)
    recent = completed[:FAILURE_THRESHOLD]
    if len(recent) < FAILURE_THRESHOLD or any(e.succeeded for e in recent):
        return
    endpoint = endpoint_of(store, event.endpoint_id)
    if endpoint is None or not endpoint.get("enabled", True):
        return
    now = isoformat(store.clock.now())
    endpoint["enabled"] = False
    endpoint["modified_at"] = now
    for pending in mine:
        if pending.succeeded is None:
            pending.skipped = True
            pending.modified_at = now
