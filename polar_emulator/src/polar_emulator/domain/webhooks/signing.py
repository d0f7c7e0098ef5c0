"""Polar's webhook signature (the original mode): HMAC-SHA256 keyed by the whole ``whsec_…`` secret.

Polar passes ``base64(secret)`` to standardwebhooks, which base64-decodes it again, so the HMAC
key is the UTF-8 bytes of the full secret string, ``whsec_`` prefix included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

USER_AGENT = "polar.sh webhooks"


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``"{msg_id}.{timestamp}.{body}"``."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def delivery_headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
