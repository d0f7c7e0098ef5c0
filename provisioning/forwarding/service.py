"""Event forwarding's operations: a connection's endpoint (its URL, its signing secret shown once,
rotation with an overlap, disabling, removing), queueing events for it, and each delivery attempt
(claim, send, settle). Functions flush at most; callers commit.

Deliveries to one connection go out in order of creation: only the oldest pending one may be sent,
so one that keeps failing holds the others back until it is delivered or fails for good (after
:data:`BACKOFF`, about 8.6 hours). An attempt is claimed with a conditional update before it is
sent (its lease keeps every other job off it), so two jobs never send one delivery at once, and a
job killed mid-attempt leaves a delivery that is retried when the lease ends: at least once, the
same ``webhook-id`` every time, for the tenant's app to deduplicate.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.orm import Session

from provisioning.background import nudge_after_commit
from provisioning.config import PolarEnvironment, Settings
from provisioning.db import utcnow
from provisioning.errors import ConnectPolarError
from provisioning.forwarding import repository
from provisioning.forwarding.models import DeliveryStatus, EventForwardDelivery, EventForwardEndpoint
from provisioning.forwarding.signing import new_secret, signed_headers
from provisioning.ids import new_id
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import vault_for
from provisioning.vault import SecretSlot, VaultError

log = logging.getLogger(__name__)

TABLE = EventForwardEndpoint.__tablename__
# The encrypted columns of ``event_forward_endpoint``: each ciphertext is bound to its column and row.
SECRET_COLUMNS = ("secret", "previous_secret")
# After a rotation the previous secret signs beside the new one this long, then is dropped.
OVERLAP = timedelta(hours=24)
# The wait after each failed attempt; the attempt after the last wait is the last one.
BACKOFF = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
TIMEOUT_SECONDS = 5.0
# An attempt under way keeps its delivery out of every other job's reach this long (a job killed
# mid-attempt: retried after it). Well above the request's timeout.
CLAIM_LEASE = timedelta(seconds=60)
URL_MAX = 2048
USER_AGENT = "ConnectPolar-Forwarding/1"
DELIVER_TASK = "provisioning.forwarding.tasks.deliver"
REMOVED_NOTE = "The endpoint was removed before this event was delivered."
SECRET_UNREADABLE = (
    "The endpoint's signing secret could not be read, so nothing was sent; rotate the secret on the "
    "billing page."
)


def nudge_key(integration_id: str) -> str:
    return f"forward:{integration_id}"


class ForwardingRefused(ConnectPolarError):
    """An owner's change cannot be made as asked; the message says why, for people, and ``field``
    which input it is about."""

    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__(message)
        self.field = field


# -- secrets -------------------------------------------------------------------------------------


def secret_slot(endpoint_id: str, column: str) -> SecretSlot:
    """Where one of an endpoint's secrets is stored: what its ciphertext is bound to."""
    assert column in SECRET_COLUMNS, column
    return SecretSlot(TABLE, column, endpoint_id)


def _encrypt(settings: Settings, endpoint: EventForwardEndpoint, column: str, plaintext: str) -> str:
    if not endpoint.id:
        endpoint.id = new_id()
    return vault_for(settings).encrypt(secret_slot(endpoint.id, column), plaintext)


def _decrypt(settings: Settings, endpoint: EventForwardEndpoint, column: str, ciphertext: str) -> str:
    """Raises VaultError (SecretBindingError for a ciphertext moved from another row)."""
    return vault_for(settings).decrypt(secret_slot(endpoint.id, column), ciphertext)


def previous_secret_active(endpoint: EventForwardEndpoint, now: datetime) -> bool:
    return (
        endpoint.previous_secret is not None
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    )


def signing_secrets(
    settings: Settings, endpoint: EventForwardEndpoint, now: datetime | None = None
) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one during its
    overlap. Raises VaultError when the current one cannot be read."""
    now = now or utcnow()
    out = [_decrypt(settings, endpoint, "secret", endpoint.secret)]
    if previous_secret_active(endpoint, now):
        assert endpoint.previous_secret is not None
        try:
            out.append(_decrypt(settings, endpoint, "previous_secret", endpoint.previous_secret))
        except VaultError as exc:  # the new secret still signs
            log.error("forwarding endpoint %s: previous secret unreadable: %s", endpoint.id, exc)
    return out


def secret_version(endpoint: EventForwardEndpoint) -> str:
    """A short fingerprint of the current secret's ciphertext (never of the secret): a rotate form
    carries it, so a form sent twice (a reload) rotates once."""
    return hashlib.sha256(endpoint.secret.encode()).hexdigest()[:16]


# -- the endpoint --------------------------------------------------------------------------------


def _refuse_private_host(host: str) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        raise ForwardingRefused("Give an address on the internet: this one is the platform's own machine.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked again, resolved, before each attempt
    if not address.is_global:
        raise ForwardingRefused("Give an address on the internet: this one is a private or local address.")


def check_url(settings: Settings, environment: str, raw: str) -> str:
    """The endpoint URL to store, or ForwardingRefused saying why not: http(s) only, no user name
    or password, https in live mode (and in every mode on a production deployment, which also
    refuses local and private addresses)."""
    url = (raw or "").strip()
    if not url:
        raise ForwardingRefused(
            "Give the URL of your app's endpoint, such as https://app.example.com/webhooks/billing."
        )
    if len(url) > URL_MAX:
        raise ForwardingRefused(f"The URL is too long: at most {URL_MAX} characters.")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ForwardingRefused("The URL contains spaces or characters that are not allowed.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ForwardingRefused("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ForwardingRefused("The URL must start with https:// (or http:// in test mode).")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ForwardingRefused(
            "The URL must not contain a user name or password: events are signed, so your app can "
            "verify them without one."
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ForwardingRefused("The URL needs a host name, such as https://app.example.com/webhooks.")
    if scheme != "https" and (environment == PolarEnvironment.PRODUCTION or settings.is_production):
        raise ForwardingRefused(
            "Live mode sends events to https URLs only."
            if environment == PolarEnvironment.PRODUCTION
            else "Events are sent to https URLs only."
        )
    if settings.is_production:
        _refuse_private_host(host)
    return url


def url_for_audit(url: str) -> str:
    """What the audit trail keeps of a URL: scheme, host, port and path (a query may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def endpoint_of(session: Session, integration_id: str) -> EventForwardEndpoint | None:
    return repository.endpoint_for(session, integration_id)


@dataclass(frozen=True)
class SavedEndpoint:
    endpoint: EventForwardEndpoint
    created: bool  # a new endpoint: ``secret`` is its signing secret, to show once
    changed: bool  # the URL is new (always, when created)
    previous_url: str | None = None
    secret: str | None = field(default=None, repr=False)


def save_endpoint(
    session: Session, settings: Settings, integration: PolarIntegration, url: str, now: datetime | None = None
) -> SavedEndpoint:
    """Set the connection's endpoint URL. The first time, a signing secret is made and returned
    (once); later the URL changes and the secret stays (rotating is its own action)."""
    now = now or utcnow()
    clean = check_url(settings, integration.environment, url)
    existing = repository.endpoint_for(session, integration.id, lock=True)
    if existing is not None:
        previous = existing.url
        if previous != clean:
            existing.url = clean
            existing.updated_at = now
            session.flush()
        return SavedEndpoint(existing, created=False, changed=previous != clean, previous_url=previous)
    endpoint = EventForwardEndpoint(
        id=new_id(), integration_id=integration.id, url=clean, enabled=True, created_at=now, updated_at=now
    )
    secret = new_secret()
    endpoint.secret = _encrypt(settings, endpoint, "secret", secret)
    repository.add_endpoint(session, endpoint)
    return SavedEndpoint(endpoint, created=True, changed=True, secret=secret)


@dataclass(frozen=True)
class RotatedSecret:
    previous_expires_at: datetime | None  # None: the previous secret was unreadable, dropped at once
    secret: str = field(repr=False)


def rotate_secret(
    session: Session, settings: Settings, endpoint: EventForwardEndpoint, now: datetime | None = None
) -> RotatedSecret:
    """A new signing secret (returned once); the current one keeps signing beside it for
    :data:`OVERLAP`. A previous secret still in its overlap is dropped now."""
    now = now or utcnow()
    try:
        current: str | None = _decrypt(settings, endpoint, "secret", endpoint.secret)
    except VaultError as exc:
        log.error("forwarding endpoint %s: current secret unreadable, replaced: %s", endpoint.id, exc)
        current = None
    secret = new_secret()
    if current is not None:
        endpoint.previous_secret = _encrypt(settings, endpoint, "previous_secret", current)
        endpoint.previous_secret_expires_at = now + OVERLAP
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = _encrypt(settings, endpoint, "secret", secret)
    endpoint.updated_at = now
    session.flush()
    return RotatedSecret(previous_expires_at=endpoint.previous_secret_expires_at, secret=secret)


def set_enabled(
    session: Session, endpoint: EventForwardEndpoint, enabled: bool, now: datetime | None = None
) -> bool:
    """Enable or disable the endpoint; False when it already was. Disabled, no event is queued for
    it and queued deliveries wait; enabled again, they go out."""
    if endpoint.enabled == enabled:
        return False
    endpoint.enabled = enabled
    endpoint.updated_at = now or utcnow()
    session.flush()
    return True


def remove_endpoint(session: Session, endpoint: EventForwardEndpoint) -> int:
    """Delete the endpoint and its secrets; the deliveries not yet made are marked failed (the log
    stays). Returns how many were."""
    failed = repository.fail_pending(session, endpoint.integration_id, REMOVED_NOTE)
    repository.delete_endpoint(session, endpoint)
    return failed


def drop_expired_previous_secrets(session: Session, now: datetime | None = None) -> int:
    return repository.drop_expired_previous_secrets(session, now or utcnow())


# -- queueing ------------------------------------------------------------------------------------


def record(
    session: Session,
    settings: Settings,
    integration: PolarIntegration,
    webhook_event_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> None:
    """Queue the event for the connection's forwarding endpoint, if it has one enabled (once per
    event: the table's unique (integration_id, webhook_event_id)), and nudge the delivery job after
    commit."""
    endpoint = repository.endpoint_for(session, integration.id)
    queue_for(session, settings, endpoint, webhook_event_id, event_type, payload)


def queue_for(
    session: Session,
    settings: Settings,
    endpoint: EventForwardEndpoint | None,
    webhook_event_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> None:
    """:func:`record` with the connection's endpoint already looked up (once for a batch of
    events, by the billing processing)."""
    if endpoint is None or not endpoint.enabled:
        return
    queued = repository.add_delivery(
        session,
        {
            "id": new_id(),
            "integration_id": endpoint.integration_id,
            "webhook_event_id": webhook_event_id,
            "event_type": event_type[:64],
            "payload": payload,
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": utcnow(),
        },
    )
    if queued:
        integration_id = endpoint.integration_id
        nudge_after_commit(
            session, settings.redis_url, DELIVER_TASK, nudge_key(integration_id), integration_id
        )


def deliveries_of(session: Session, integration_id: str, limit: int = 100) -> list[EventForwardDelivery]:
    """The connection's newest deliveries first."""
    return repository.recent(session, integration_id, limit)


def delivery_in(session: Session, integration_id: str, delivery_id: str) -> EventForwardDelivery | None:
    return repository.delivery_in(session, integration_id, delivery_id)


def redeliver(
    session: Session, settings: Settings, delivery: EventForwardDelivery, now: datetime | None = None
) -> None:
    """Queue the delivery again: pending, due now, a fresh schedule of attempts."""
    endpoint = repository.endpoint_for(session, delivery.integration_id)
    if endpoint is None:
        raise ForwardingRefused("Set an endpoint URL first: there is nowhere to send the event.", "endpoint")
    if not endpoint.enabled:
        raise ForwardingRefused("The endpoint is disabled: enable it first, then redeliver.", "endpoint")
    repository.requeue(session, delivery.id, now or utcnow())
    session.refresh(delivery)
    nudge_after_commit(
        session, settings.redis_url, DELIVER_TASK, nudge_key(delivery.integration_id), delivery.integration_id
    )


# -- delivering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt: what to send, where, and with which secrets (never shown or logged)."""

    delivery_id: str
    integration_id: str
    number: int  # 1 for the first attempt
    event_type: str
    url: str
    body: str
    public_only: bool  # a production deployment sends to public addresses only
    secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None


def claim_next(
    session: Session, settings: Settings, integration_id: str, now: datetime | None = None
) -> Attempt | None:
    """Claim the connection's oldest pending delivery if it is due and its endpoint enabled; None
    when there is nothing to send now (the caller commits the claim before sending)."""
    now = now or utcnow()
    endpoint = repository.endpoint_for(session, integration_id)
    if endpoint is None or not endpoint.enabled:
        return None
    first = repository.head(session, integration_id)
    if first is None or (first.next_attempt_at is not None and first.next_attempt_at > now):
        return None
    try:
        secrets = tuple(signing_secrets(settings, endpoint, now))
    except VaultError as exc:
        log.error("forwarding endpoint %s: %s", endpoint.id, exc)
        secrets = ()
    if not repository.claim(session, first.id, first.attempts, now, now + CLAIM_LEASE):
        return None  # another job took it
    return Attempt(
        delivery_id=first.id,
        integration_id=integration_id,
        number=first.attempts + 1,
        event_type=first.event_type,
        url=endpoint.url,
        body=json.dumps(first.payload, separators=(",", ":"), ensure_ascii=False),
        public_only=settings.is_production,
        secrets=secrets,
    )


def _resolves_to_private(url: str) -> bool:
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # the request fails on its own, with its own error
    return any(not ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_global for info in infos)


def send(attempt: Attempt, client: httpx.Client, now: datetime | None = None) -> Outcome:
    """POST the delivery, signed now; 2xx is delivered. Redirects are not followed and the answer's
    body is not read."""
    if not attempt.secrets:
        return Outcome(False, error=SECRET_UNREADABLE)
    if attempt.public_only and _resolves_to_private(attempt.url):
        return Outcome(
            False, error="The endpoint's host resolves to a private or local address; nothing was sent."
        )
    headers = signed_headers(attempt.secrets, attempt.delivery_id, now or utcnow(), attempt.body)
    headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
    try:
        with client.stream(
            "POST",
            attempt.url,
            content=attempt.body.encode(),
            headers=headers,
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
        ) as response:
            code = response.status_code
    except httpx.TimeoutException:
        return Outcome(False, error=f"No answer within {TIMEOUT_SECONDS:g} seconds.")
    except httpx.ConnectError:
        return Outcome(False, error="Could not connect to the endpoint.")
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"The request failed ({type(exc).__name__}).")
    if 200 <= code < 300:
        return Outcome(True, status_code=code)
    return Outcome(False, status_code=code, error=f"The endpoint answered HTTP {code}.")


def settle(
    session: Session, attempt: Attempt, outcome: Outcome, now: datetime | None = None
) -> DeliveryStatus:
    """Record the attempt's outcome: delivered; or failed for good after the last attempt; or
    pending again after the next wait of :data:`BACKOFF`. Returns the delivery's status."""
    now = now or utcnow()
    values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        status = DeliveryStatus.DELIVERED
        values |= {"status": status, "delivered_at": now, "next_attempt_at": None}
    elif attempt.number >= MAX_ATTEMPTS:
        status = DeliveryStatus.FAILED
        values |= {"status": status, "next_attempt_at": None}
    else:
        status = DeliveryStatus.PENDING
        values["next_attempt_at"] = now + BACKOFF[attempt.number - 1]
    repository.settle(session, attempt.delivery_id, attempt.number, values)
    return status


def due_integrations(session: Session, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Connections whose next delivery is due (and whose endpoint is enabled)."""
    return list(repository.due_integrations(session, now or utcnow(), limit))
