"""Token and id generation in Polar's formats."""

from __future__ import annotations

import secrets
import string
import uuid
import zlib

_ALPHABET = string.ascii_letters + string.digits
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def _base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def generate_token(prefix: str) -> str:
    """``prefix`` + 37 random alphanumerics + a 6-char base62 CRC32, as Polar's generate_token."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(37))
    return f"{prefix}{body}{_base62(zlib.crc32(body.encode()), 6)}"


def new_id() -> str:
    return str(uuid.uuid4())
