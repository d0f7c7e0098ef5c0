"""Receive one webhook delivery: find the integration by its URL, verify, deduplicate, record.

Verification uses the ``standardwebhooks`` library (what Polar signs with) and accepts both of
Polar's schemes, as polar-sdk's ``validate_event`` does: Polar's original HMAC keyed by the UTF-8
bytes of the whole ``whsec_`` secret (given to the library base64-encoded), and Standard Webhooks
proper (the base64 remainder after ``whsec_``); the 5-minute timestamp window is enforced.
``validate_event`` itself is not used: it also loads the payload into polar-sdk's dataclasses, which
costs seconds of loader compilation on first use and fails on some correctly signed payloads
(polar-sdk 1.0.2 types ``CustomerStateSubscription.status`` wrongly), while we record the JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from provisioning import background
from provisioning.config import Settings
from provisioning.db import Database, DriverConnection, utcnow
from provisioning.errors import ConnectPolarError
from provisioning.ids import new_id
from provisioning.integrations.models import IntegrationStatus
from provisioning.integrations.service import SecretIntegrityError, decrypt_secret
from provisioning.observability import metrics
from provisioning.webhooks import repository
from provisioning.webhooks.models import EventStatus

log = logging.getLogger(__name__)
# The job that processes a connection's recorded events (``billing.tasks``), nudged after commit.
PROCESS_EVENTS = "provisioning.billing.tasks.process"
# Headers kept with the body: what was signed besides it (never the signature itself).
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp")
MAX_BODY_BYTES = 1024 * 1024
MAX_WEBHOOK_ID = 128  # the column's length: longer ids are stored as their SHA-256


def processing_key(integration_id: str) -> str:
    return f"events:{integration_id}"


def stored_webhook_id(webhook_id: str) -> str:
    """The id as recorded: itself when it fits the column, else ``sha256:<hex>`` of it (still one
    row per delivery, however long the sender's ids are)."""
    if len(webhook_id) <= MAX_WEBHOOK_ID:
        return webhook_id
    return "sha256:" + hashlib.sha256(webhook_id.encode("utf-8", "surrogatepass")).hexdigest()


class WebhookRejected(ConnectPolarError):
    """The delivery is refused; ``status`` is the HTTP status to answer, the message says why and
    ``reason`` names it for the metrics."""

    def __init__(self, status: int, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Receipt:
    event_type: str
    webhook_id: str
    integration_id: str
    duplicate: bool


def receive(
    database: Database, settings: Settings, *, path_token: str, body: bytes, headers: Mapping[str, str]
) -> Receipt:
    """Verify and record a delivery, then nudge its processing. Raises WebhookRejected.

    Each write is a single statement on an autocommit connection (``Database.autocommit``), so a
    recorded delivery is committed before its nudge, at one round trip: a delivery to an endpoint
    read before (this process remembers them) is verified with its secret and recorded by an
    ``INSERT`` that also checks the endpoint is unchanged. Anything else (a first delivery, a
    changed endpoint, Polar's retry of a recorded delivery) reads the endpoint first.
    """
    metrics.WEBHOOKS_RECEIVED.inc()
    try:
        receipt = _receive(database, settings, path_token=path_token, body=body, headers=headers)
    except WebhookRejected as exc:
        metrics.WEBHOOKS_REJECTED.labels(exc.reason).inc()
        raise
    metrics.WEBHOOKS_RECORDED.labels("duplicate" if receipt.duplicate else "recorded").inc()
    if not receipt.duplicate:
        integration_id = receipt.integration_id
        background.nudge(settings.redis_url, PROCESS_EVENTS, processing_key(integration_id), integration_id)
        log.info(
            "webhook %s (%s) received for integration %s",
            receipt.webhook_id,
            receipt.event_type,
            integration_id,
        )
    return receipt


def _receive(
    database: Database, settings: Settings, *, path_token: str, body: bytes, headers: Mapping[str, str]
) -> Receipt:
    if len(body) > MAX_BODY_BYTES:
        raise WebhookRejected(413, "payload too large", "too_large")
    lowered = {k.lower(): v for k, v in headers.items()}
    with database.autocommit() as connection:
        remembered = _ENDPOINTS.get(path_token)
        if remembered is not None:
            receipt = _record_for_remembered(connection, settings, remembered, path_token, body, lowered)
            if receipt is not None:
                return receipt
            # A duplicate, a changed endpoint (disconnected, a new secret) or a bad signature: read
            # the endpoint as if never seen.
        return _record_reading_endpoint(connection, settings, path_token, body, lowered)


def _record_for_remembered(
    connection: DriverConnection,
    settings: Settings,
    endpoint: repository.Endpoint,
    path_token: str,
    body: bytes,
    headers: Mapping[str, str],
) -> Receipt | None:
    try:
        secret = _secret(settings, endpoint.integration_id, endpoint.webhook_secret or "")
    except SecretIntegrityError:
        return None
    if not _verified(body, headers, secret):
        return None
    event = _event(body, headers)
    if not repository.insert_event_if_unchanged(connection, endpoint, path_token, event.row()):
        return None
    return Receipt(event.event_type, event.webhook_id, endpoint.integration_id, duplicate=False)


def _record_reading_endpoint(
    connection: DriverConnection, settings: Settings, path_token: str, body: bytes, headers: Mapping[str, str]
) -> Receipt:
    endpoint = repository.endpoint_by_path_token(connection, path_token)
    if endpoint is None:
        _ENDPOINTS.pop(path_token, None)
        raise WebhookRejected(404, "no webhook endpoint here", "unknown_endpoint")
    if endpoint.status == IntegrationStatus.NOT_CONNECTED:
        _ENDPOINTS.pop(path_token, None)
        raise WebhookRejected(410, "this workspace disconnected Polar", "disconnected")
    if not endpoint.webhook_secret:
        # Polar starts delivering as soon as it created the endpoint, before the run stored its
        # secret: answer with a failure Polar retries.
        raise WebhookRejected(503, "this webhook endpoint is being set up; retry later", "not_ready")
    try:
        secret = _secret(settings, endpoint.integration_id, endpoint.webhook_secret)
    except SecretIntegrityError:
        # Moved here from another row (logged for staff): never verify with another's secret.
        # Polar retries; the next provisioning run stores Polar's own secret again.
        raise WebhookRejected(
            503, "this webhook endpoint's secret failed its integrity check", "secret_integrity"
        ) from None
    if not _verified(body, headers, secret):
        raise WebhookRejected(403, "invalid webhook signature", "bad_signature")
    _keep(_ENDPOINTS, path_token, endpoint, _ENDPOINTS_KEPT)
    event = _event(body, headers)
    recorded = repository.insert_event_if_unchanged(connection, endpoint, path_token, event.row())
    # Not recorded: Polar's retry of a delivery recorded before, or the same one concurrently (or
    # the endpoint changed in the instant since it was read: answered as a delivery it had).
    return Receipt(event.event_type, event.webhook_id, endpoint.integration_id, duplicate=not recorded)


@dataclass(frozen=True)
class _Event:
    """A verified delivery, as recorded."""

    event_type: str
    webhook_id: str
    text: str  # the body, decoded: the payload as recorded
    body: bytes
    signed_headers: dict[str, str]

    def row(self) -> dict[str, Any]:
        return {
            "id": new_id(),
            "webhook_id": self.webhook_id,
            "event_type": self.event_type,
            "payload": self.text,
            "raw_body": self.body,
            "signed_headers": self.signed_headers,
            "status": EventStatus.PENDING,
            "attempts": 0,
            "received_at": utcnow(),
        }


def _event(body: bytes, headers: Mapping[str, str]) -> _Event:
    try:
        text = body.decode("utf-8")  # JSON between systems is UTF-8 (RFC 8259), without a BOM
    except UnicodeDecodeError:
        raise WebhookRejected(400, "the payload is not UTF-8 JSON", "bad_payload") from None
    payload = _as_dict(text)
    return _Event(
        event_type=str(payload.get("type") or "unknown")[:64],
        webhook_id=stored_webhook_id(headers["webhook-id"]),
        text=text,
        body=body,
        signed_headers={name: headers[name] for name in SIGNED_HEADERS if name in headers},
    )


# Endpoints by URL token, as last read: a delivery to a remembered one is verified with its secret
# and recorded by a statement that checks the connection still has it, so a change (a disconnect, a
# new secret) is never missed; it only costs the next delivery the read.
_ENDPOINTS: dict[str, repository.Endpoint] = {}
_ENDPOINTS_KEPT = 4096


K = TypeVar("K")
V = TypeVar("V")


def _keep(cache: dict[K, V], key: K, value: V, most: int) -> None:
    """Put ``value`` in a cache of at most ``most`` entries, the oldest going first."""
    if key not in cache and len(cache) >= most:
        cache.pop(next(iter(cache)), None)
    cache[key] = value


# Decrypted endpoint secrets by (connection, ciphertext): a delivery costs no decryption once its
# secret was seen, and a new ciphertext (Polar's new secret, a key rotation) is simply another key.
_SECRETS: dict[tuple[str, str], str] = {}
_SECRETS_KEPT = 1024


def _secret(settings: Settings, integration_id: str, ciphertext: str) -> str:
    key = (integration_id, ciphertext)
    secret = _SECRETS.get(key)
    if secret is None:
        secret = decrypt_secret(settings, integration_id, "webhook_secret", ciphertext)
        _keep(_SECRETS, key, secret, _SECRETS_KEPT)
    return secret


def _verified(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    """Each entry of ``webhook-signature`` is checked on its own: standardwebhooks stops at the
    first malformed entry (no comma, bad base64), which must not hide a valid one after it."""
    keys = [base64.b64encode(secret.encode()).decode(), secret]  # Polar's original, then standard
    entries = headers.get("webhook-signature", "").split(" ")
    for key in keys:
        for entry in entries:
            if not entry.startswith("v1,"):
                continue
            try:
                Webhook(key).verify(body, {**headers, "webhook-signature": entry}, json_parse=False)
                return True
            except (WebhookVerificationError, ValueError, binascii.Error):
                continue
    return False


def _as_dict(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text, parse_constant=_not_json)
    except ValueError:
        raise WebhookRejected(400, "the payload is not JSON", "bad_payload") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "the payload is not a JSON object", "bad_payload")
    return payload


def _not_json(constant: str) -> None:
    """``NaN`` and ``Infinity`` are Python's, not JSON's (PostgreSQL refuses them)."""
    raise ValueError(constant)
