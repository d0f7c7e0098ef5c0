"""Signing secrets and signatures, the Standard Webhooks way (what Polar does for us, we do for
tenants): ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>``
over ``<id>.<timestamp>.<body>``, keyed by the base64 part of a ``whsec_`` secret. Any Standard
Webhooks library verifies them with the secret shown to the owner.

During a rotation's overlap two secrets sign each delivery: the header holds both signatures,
space-separated, and a receiver holding either secret finds its own.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_header(signing_secrets: Sequence[str], message_id: str, timestamp: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,<signature>`` per secret, space-separated."""
    if not signing_secrets:
        raise ValueError("at least one signing secret is needed")
    return " ".join(Webhook(s).sign(message_id, timestamp, body) for s in signing_secrets)


def signed_headers(
    signing_secrets: Sequence[str], message_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent as message ``message_id`` now."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(signing_secrets, message_id, timestamp, body),
    }
