"""Resource calls to Polar through polar-sdk: one long-lived SDK client per process and base URL,
the tenant's token passed per call, calls counted, transient failures retried.

Creates are not idempotent at Polar (no idempotency keys): a 5xx or a dropped connection after the
request was sent may hide a successful create. Those are *not* retried here; they raise
``AmbiguousWriteError`` and the provisioning step re-lists and finds the object before creating
again. Reads, updates and deletes are retried with exponential backoff and jitter; a 429 is retried
after its ``Retry-After`` (Polar's rate limiter rejects before doing any work).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
from polar.base import (
    PolarClientError,
    PolarDeserializationError,
    PolarNetworkError,
    PolarRateLimitError,
    PolarServerError,
)
from polar.v2026_10 import Polar

from provisioning.observability import metrics
from provisioning.polar.errors import PolarBusy, ProvisioningError, TransientPolarError
from provisioning.ratelimit import lanes
from provisioning.ratelimit.budget import BudgetExhausted, RateBudget
from provisioning.ratelimit.registry import budget_for

log = logging.getLogger(__name__)
T = TypeVar("T")

_sdk_clients: dict[tuple[int, str], Polar] = {}
_sdk_lock = threading.Lock()


def polar_sdk(base_url: str, *, timeout: float = 15.0) -> Polar:
    """The process's SDK client for ``base_url`` (keyed by pid too: never shared across a fork)."""
    key = (os.getpid(), base_url)
    with _sdk_lock:
        client = _sdk_clients.get(key)
        if client is None:
            # The real token is passed per call (request_access_token); this one is never valid.
            client = Polar("no-default-token", base_url=base_url, timeout=timeout)
            _sdk_clients[key] = client
        return client


class AmbiguousWriteError(TransientPolarError):
    """A create may or may not have happened at Polar; list again before creating again."""


class PolarApi:
    """One tenant's view of Polar for one run: counts reads/writes, retries what is safe to retry."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        max_attempts: int = 4,
        backoff_base: float = 0.2,
        backoff_cap: float = 4.0,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        reauthorize: Callable[[str], str] | None = None,
        caller: lanes.Caller | None = None,
    ) -> None:
        """``reauthorize(rejected_token)``: after a 401, the access token to retry the call with
        (the connection's token refreshed through its lock); each call is retried once.

        Every attempt first takes room in the shared rate budget of ``base_url``'s client, in the
        lane of ``caller`` (by default the lane of the context the client is built in)."""
        self.sdk = polar_sdk(base_url)
        self.budget = budget_for(base_url)
        self.caller = caller or lanes.current()
        self._token = access_token
        self._reauthorize = reauthorize
        self._token_lock = threading.Lock()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0

    def __repr__(self) -> str:
        return f"PolarApi(reads={self.reads}, writes={self.writes})"

    @property
    def counts(self) -> dict[str, int]:
        return {"read": self.reads, "write": self.writes}

    # -- calls -------------------------------------------------------------------------------

    def read(self, fn: Callable[..., T], *args: Any, action: str, scope: str, **kwargs: Any) -> T:
        return self._call(fn, args, kwargs, write=False, idempotent=True, action=action, scope=scope)

    def write(
        self,
        fn: Callable[..., T],
        *args: Any,
        action: str,
        scope: str,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> T:
        return self._call(fn, args, kwargs, write=True, idempotent=idempotent, action=action, scope=scope)

    def create(self, fn: Callable[..., T], *, action: str, scope: str, **kwargs: Any) -> T:
        return self._call(fn, (), kwargs, write=True, idempotent=False, action=action, scope=scope)

    def list_all(self, fn: Callable[..., Any], *, action: str, scope: str, **filters: Any) -> list[Any]:
        """Every item of a paginated list, 100 per page, each page one counted read."""
        return list(self.iter_all(fn, action=action, scope=scope, **filters))

    def iter_all(self, fn: Callable[..., Any], *, action: str, scope: str, **filters: Any) -> Iterator[Any]:
        page = 1
        while True:
            result = self.read(fn, action=action, scope=scope, page=page, limit=100, **filters)
            yield from result.items
            if page >= result.pagination.max_page:
                return
            page += 1

    def _call(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        write: bool,
        idempotent: bool,
        action: str,
        scope: str,
    ) -> T:
        attempt = 0
        reauthorized = False
        operation = metrics.operation_of(fn)
        while True:
            attempt += 1
            with self._lock:
                if write:
                    self.writes += 1
                else:
                    self.reads += 1
            token = self._token
            take_budget(self.budget, self.caller, action)
            try:
                return _counted(operation, fn, args, {**kwargs, "request_access_token": token})
            except PolarRateLimitError as exc:
                metrics.POLAR_RATE_LIMITED.labels(operation).inc()
                wait = float(exc.retry_after) if exc.retry_after is not None else self._backoff(attempt)
                if self.budget is not None and exc.retry_after is not None:
                    self.budget.pause(wait)  # every process waits, not only this call
                if wait > self.max_retry_after or attempt >= self.max_attempts:
                    raise PolarBusy(
                        f"Polar is rate-limiting our requests (retry after {wait:.0f}s) while trying to {action}",
                        retry_after=wait,
                    ) from None
                log.info("polar 429 on %s; waiting %.1fs (attempt %d)", action, wait, attempt)
                metrics.POLAR_RETRIES.labels(operation, "429").inc()
                self._sleep(wait)
            except (PolarServerError, PolarNetworkError) as exc:
                status = getattr(exc, "status_code", None)
                safe = idempotent or _not_sent(exc)
                if not safe:
                    raise AmbiguousWriteError(
                        f"Polar failed while trying to {action} ({_describe(exc)}); it will be checked and retried",
                        status=status,
                    ) from None
                if attempt >= self.max_attempts:
                    raise TransientPolarError(
                        f"Polar is unavailable: {_describe(exc)} while trying to {action}; will retry",
                        status=status,
                    ) from None
                delay = self._backoff(attempt)
                log.info(
                    "polar %s on %s; retrying in %.2fs (attempt %d)", _describe(exc), action, delay, attempt
                )
                metrics.POLAR_RETRIES.labels(operation, _status_label(exc)).inc()
                self._sleep(delay)
            except PolarClientError as exc:
                if exc.status_code == 401 and self._reauthorize is not None and not reauthorized:
                    # Expired or rotated at Polar while our row thought it fresh: refresh (once, for
                    # every thread of this run), then retry the call once. A 401 means nothing was
                    # done, so even a create is safe to send again.
                    reauthorized = True
                    self._renew(token)
                    continue
                raise client_error(exc, action=action, scope=scope) from None
            except PolarDeserializationError as exc:
                # Some methods declare a typed 403 that Polar's OAuth errors (insufficient_scope)
                # do not fit: the SDK then cannot parse the body. Read the body it failed on.
                body = _unparsed_error_body(exc.error)
                if body.get("error") == "insufficient_scope":
                    raise _status_error(403, body, action=action, scope=scope) from None
                raise ProvisioningError(
                    f"Polar answered with an unexpected response while trying to {action}"
                ) from None

    def _renew(self, rejected: str) -> None:
        assert self._reauthorize is not None
        with self._token_lock:
            if self._token == rejected:  # not renewed yet by another thread of this run
                self._token = self._reauthorize(rejected)

    def _backoff(self, attempt: int) -> float:
        raw = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return raw * random.uniform(0.5, 1.5)


def take_budget(budget: RateBudget | None, caller: lanes.Caller, action: str) -> None:
    """Room for one call in ``budget`` (none: not limited), or PolarBusy saying when."""
    if budget is None:
        return
    try:
        waited = budget.acquire(caller)
    except BudgetExhausted as exc:
        metrics.BUDGET_EXHAUSTED.labels(caller.lane.value).inc()
        raise PolarBusy(f"{exc} (while trying to {action})", retry_after=exc.retry_after) from None
    metrics.BUDGET_WAIT_SECONDS.labels(caller.lane.value).observe(waited)


def _counted(operation: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """One attempt of a call, counted in the metrics by operation and status."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        metrics.POLAR_CALLS.labels(operation, _status_label(exc)).inc()
        raise
    metrics.POLAR_CALLS.labels(operation, "ok").inc()
    return result


def _status_label(exc: Exception) -> str:
    if isinstance(exc, PolarNetworkError):
        return "network"
    status = getattr(exc, "status_code", None)
    return str(status) if isinstance(status, int) else "error"


def _not_sent(exc: Exception) -> bool:
    """A connect failure means the request never reached Polar, so even a create may be retried."""
    return isinstance(exc, PolarNetworkError) and isinstance(
        exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, PolarServerError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, PolarNetworkError):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "network error"
        return f"network error ({cause})"
    return type(exc).__name__


def _error_body(exc: PolarClientError) -> dict[str, Any]:
    err = exc.error
    if isinstance(err, str):
        try:
            parsed = json.loads(err)
        except ValueError:
            return {"detail": err[:200]}
        return parsed if isinstance(parsed, dict) else {}
    if err is None:
        return {}
    out: dict[str, Any] = {}
    for name in ("error", "detail"):
        value = getattr(err, name, None)
        if value is not None:
            out[name] = value
    return out


def _unparsed_error_body(error: Any) -> dict[str, Any]:
    """The JSON object an SDK deserialization error failed on, if it looks like an error body."""
    value = getattr(error, "input_value", None)
    if isinstance(value, dict) and "error" in value:
        return value
    for inner in getattr(error, "exceptions", None) or ():
        found = _unparsed_error_body(inner)
        if found:
            return found
    return {}


def client_error(exc: PolarClientError, *, action: str, scope: str) -> ProvisioningError:
    """Turn a 4xx into a message a person can act on."""
    return _status_error(exc.status_code, _error_body(exc), action=action, scope=scope)


def _status_error(status: int, body: dict[str, Any], *, action: str, scope: str) -> ProvisioningError:
    code = body.get("error")
    if status == 401:
        return ProvisioningError(
            "Polar rejected the stored access token (expired or revoked); reconnect Polar",
            status=status,
            needs_reconnect=True,
        )
    if status == 403 and code == "insufficient_scope":
        return ProvisioningError(
            f"Polar refused: the connection lacks the '{scope}' scope; reconnect Polar to grant it",
            status=status,
            needs_reconnect=True,
        )
    if status == 403:
        detail = str(body.get("detail") or "permission denied").rstrip(".")
        return ProvisioningError(
            f"Polar refused to {action}: {detail}. An owner or admin of the Polar organization must connect it",
            status=status,
        )
    if status == 404:
        return ProvisioningError(f"Polar could not find the object while trying to {action}", status=status)
    if status == 422:
        return ProvisioningError(
            f"Polar rejected the request to {action}: {_validation_text(body)}", status=status
        )
    return ProvisioningError(f"Polar refused to {action} (HTTP {status})", status=status)


def _validation_text(body: dict[str, Any]) -> str:
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            loc = getattr(item, "loc", None) if not isinstance(item, dict) else item.get("loc")
            msg = getattr(item, "msg", None) if not isinstance(item, dict) else item.get("msg")
            parts.append(f"{'.'.join(str(x) for x in (loc or []) if x != 'body')}: {msg}")
        return "; ".join(parts)
    return str(detail or "invalid request")[:300]
