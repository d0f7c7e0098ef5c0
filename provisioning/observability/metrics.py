"""The platform's metrics (prometheus-client). Every process records into these; what a scrape
shows is assembled by the web layer (``app/ops``), merged across processes in multiprocess mode
(see :mod:`provisioning.observability.multiproc`, which must run before this module is imported).

Labels stay bounded: an operation is the polar-sdk method (``products.list``), never a message or
an id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

POLAR_CALLS = Counter(
    "connect_polar_polar_calls",
    "Calls to Polar's API, each attempt counted, by polar-sdk operation and HTTP status (ok, or network)",
    ["operation", "status"],
)
POLAR_RATE_LIMITED = Counter(
    "connect_polar_polar_rate_limited", "429 answers from Polar's API, by operation", ["operation"]
)
POLAR_RETRIES = Counter(
    "connect_polar_polar_retries",
    "Polar calls retried after a 429, a 5xx or a network error, by operation and reason",
    ["operation", "reason"],
)
BUDGET_WAIT_SECONDS = Histogram(
    "connect_polar_polar_budget_wait_seconds",
    "Time a call to Polar waited for room in the shared rate budget, by lane",
    ["lane"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUDGET_EXHAUSTED = Counter(
    "connect_polar_polar_budget_exhausted",
    "Calls to Polar that did not wait for the shared rate budget (a run deferred, a person told), by lane",
    ["lane"],
)
RUNS = Counter(
    "connect_polar_provisioning_runs",
    "Provisioning jobs finished, by outcome (succeeded, failed, cancelled, retrying, error, ...)",
    ["outcome"],
)
RUN_SECONDS = Histogram(
    "connect_polar_provisioning_run_duration_seconds",
    "Wall time of a provisioning job, by outcome",
    ["outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
STEP_SECONDS = Histogram(
    "connect_polar_provisioning_step_duration_seconds",
    "Duration of a provisioning step, by step and status (succeeded, failed)",
    ["step", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
WEBHOOKS_RECEIVED = Counter("connect_polar_webhook_deliveries_received", "Webhook deliveries received")
WEBHOOKS_REJECTED = Counter(
    "connect_polar_webhook_deliveries_rejected",
    "Webhook deliveries refused, by reason (unknown_endpoint, disconnected, not_ready, too_large, "
    "secret_integrity, bad_signature, bad_payload)",
    ["reason"],
)
WEBHOOKS_RECORDED = Counter(
    "connect_polar_webhook_deliveries_recorded",
    "Webhook deliveries accepted, by whether they were new (recorded) or a duplicate of one recorded",
    ["result"],
)
TOKEN_REFRESHES = Counter(
    "connect_polar_token_refreshes",
    "Refreshes of a connection's access token at Polar's token endpoint, by outcome (ok, the OAuth "
    "error code, unavailable)",
    ["outcome"],
)


def operation_of(fn: Callable[..., Any]) -> str:
    """``ProductsSync.list`` → ``products.list``: the polar-sdk method, a bounded label."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "unknown"
    return name.replace("Sync.", ".").lower()
