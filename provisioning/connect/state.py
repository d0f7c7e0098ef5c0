"""The OAuth ``state``: encrypted and authenticated (Fernet, key derived by HKDF from SECRET_KEY).

It carries the workspace, user, environment, nonce and expiry, so a tampered or expired state is
refused before anything else happens. The nonce also keys the server-side attempt (single use).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from provisioning.errors import ConnectPolarError

STATE_INFO = b"connect-polar/oauth-state/v1"


class StateError(ConnectPolarError, ValueError):
    """The state is not ours, was altered, or has expired."""


@dataclass(frozen=True)
class ConnectState:
    workspace_id: str
    user_id: str
    environment: str
    nonce: str
    expires_at: int  # unix seconds


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=STATE_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encode_state(secret_key: str, state: ConnectState) -> str:
    payload = {
        "w": state.workspace_id,
        "u": state.user_id,
        "e": state.environment,
        "n": state.nonce,
        "x": state.expires_at,
    }
    return _fernet(secret_key).encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_state(secret_key: str, token: str, *, now: float | None = None) -> ConnectState:
    try:
        raw = _fernet(secret_key).decrypt(token.encode())
        data = json.loads(raw)
        state = ConnectState(
            workspace_id=str(data["w"]),
            user_id=str(data["u"]),
            environment=str(data["e"]),
            nonce=str(data["n"]),
            expires_at=int(data["x"]),
        )
    except (InvalidToken, ValueError, KeyError, TypeError) as exc:
        raise StateError("invalid") from exc
    if (time.time() if now is None else now) > state.expires_at:
        raise StateError("expired")
    return state
