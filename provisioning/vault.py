"""The token vault: secrets encrypted at rest with MultiFernet (the first key encrypts, all decrypt)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from provisioning.errors import ConnectPolarError


class VaultError(ConnectPolarError):
    """A stored secret cannot be decrypted with any configured key."""


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise VaultError("no encryption key configured (POLAR_TOKEN_ENCRYPTION_KEY)")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise VaultError("a stored secret could not be decrypted with the configured keys") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise VaultError("a stored secret could not be decrypted with the configured keys") from exc
