"""The token vault: secrets encrypted at rest with MultiFernet (the first key encrypts, all decrypt),
each bound to what it is and whose it is.

Fernet authenticates its whole plaintext, so the binding lives inside it: a small versioned envelope
``cp:v1:{"t": table, "c": column, "r": row id, "s": secret}``. Every decrypt names the slot it
reads (:class:`SecretSlot`) and the envelope must name the same one: a ciphertext copied into
another row or another column fails to decrypt (:class:`SecretBindingError`) instead of handing one
workspace's token to another's operation. Ciphertexts written before the envelope existed (plain
Fernet over the bare secret) still decrypt, unbound, until ``flask keys rotate`` rewrites them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from provisioning.errors import ConnectPolarError

ENVELOPE_PREFIX = b"cp:v"
ENVELOPE_V1 = b"cp:v1:"


class VaultError(ConnectPolarError):
    """A stored secret cannot be decrypted with any configured key."""


class SecretBindingError(VaultError):
    """A stored secret decrypted, but it belongs to another row or column: it was moved."""


@dataclass(frozen=True)
class SecretSlot:
    """Where a secret is stored: its table, its column and its owning row's primary key."""

    table: str
    column: str
    row_id: str

    def __post_init__(self) -> None:
        if not self.row_id:
            raise ValueError(f"{self.table}.{self.column}: a secret needs its row's id before encryption")

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of row {self.row_id}"


class Freshness(Enum):
    """What :meth:`Vault.inspect` finds in a ciphertext."""

    CURRENT = "current"  # bound to its slot, under the first key: nothing to rewrite
    STALE = "stale"  # readable, but under an older key or without the envelope (legacy)


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise VaultError("no encryption key configured (POLAR_TOKEN_ENCRYPTION_KEY)")
        self._first = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, slot: SecretSlot, plaintext: str) -> str:
        """The secret, bound to ``slot``, under the first key."""
        envelope = {"t": slot.table, "c": slot.column, "r": slot.row_id, "s": plaintext}
        raw = ENVELOPE_V1 + json.dumps(envelope, separators=(",", ":")).encode()
        return self._fernet.encrypt(raw).decode()

    def decrypt(self, slot: SecretSlot, ciphertext: str) -> str:
        """The secret stored at ``slot``. Raises :class:`SecretBindingError` if the ciphertext was
        made for another slot, :class:`VaultError` if no configured key reads it."""
        secret, _ = self._open(slot, self._fernet, ciphertext)
        return secret

    def rotate(self, slot: SecretSlot, ciphertext: str) -> str:
        """Re-encrypt with the first (newest) key, bound to ``slot`` (legacy ciphertexts included)."""
        return self.encrypt(slot, self.decrypt(slot, ciphertext))

    def inspect(self, slot: SecretSlot, ciphertext: str) -> Freshness:
        """Whether :meth:`rotate` would change anything. Raises as :meth:`decrypt` does."""
        try:
            _, bound = self._open(slot, self._first, ciphertext)
        except SecretBindingError:
            raise
        except VaultError:
            self.decrypt(slot, ciphertext)  # readable by an older key, or by none (raises)
            return Freshness.STALE
        return Freshness.CURRENT if bound else Freshness.STALE

    @staticmethod
    def _open(slot: SecretSlot, fernet: Fernet | MultiFernet, ciphertext: str) -> tuple[str, bool]:
        """(secret, whether it was bound) of ``ciphertext`` read at ``slot``."""
        try:
            raw = fernet.decrypt(ciphertext.encode())
        except (InvalidToken, UnicodeError) as exc:
            raise VaultError(f"{slot} could not be decrypted with the configured keys") from exc
        if not raw.startswith(ENVELOPE_PREFIX):
            return raw.decode(), False  # legacy: plain Fernet over the bare secret
        if not raw.startswith(ENVELOPE_V1):
            raise VaultError(f"{slot} is in an envelope version this release cannot read")
        try:
            envelope = json.loads(raw[len(ENVELOPE_V1) :])
            bound_to = SecretSlot(str(envelope["t"]), str(envelope["c"]), str(envelope["r"]))
            secret = envelope["s"]
        except (ValueError, KeyError, TypeError) as exc:
            raise VaultError(f"{slot} holds a malformed envelope") from exc
        if bound_to != slot or not isinstance(secret, str):
            # Never say whose it is: the message may reach a page or a log.
            raise SecretBindingError(
                f"{slot} failed its integrity check: it was encrypted for another row or column"
            )
        return secret, True
