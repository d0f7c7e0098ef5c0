"""The vault binds each secret to its table, column and row, inside Fernet's authenticated plaintext."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from provisioning.vault import Freshness, SecretBindingError, SecretSlot, Vault, VaultError

SLOT = SecretSlot("polar_integration", "access_token", "row-a")


@pytest.fixture
def vault() -> Vault:
    return Vault([Fernet.generate_key()])


def test_a_secret_decrypts_only_in_its_own_slot(vault: Vault) -> None:
    ciphertext = vault.encrypt(SLOT, "polar_at_secret")
    assert vault.decrypt(SLOT, ciphertext) == "polar_at_secret"
    for other in (
        SecretSlot("polar_integration", "access_token", "row-b"),  # another row
        SecretSlot("polar_integration", "refresh_token", "row-a"),  # another column
        SecretSlot("polar_connect_attempt", "access_token", "row-a"),  # another table
    ):
        with pytest.raises(SecretBindingError) as caught:
            vault.decrypt(other, ciphertext)
        # It names where it was read, never the secret nor where it came from.
        assert (
            str(caught.value)
            == f"{other} failed its integrity check: it was encrypted for another row or column"
        )


def test_the_envelope_is_authenticated(vault: Vault) -> None:
    ciphertext = vault.encrypt(SLOT, "polar_at_secret")
    tampered = ciphertext[:-6] + ("A" if ciphertext[-6] != "A" else "B") + ciphertext[-5:]
    with pytest.raises(VaultError):
        vault.decrypt(SLOT, tampered)


def test_legacy_ciphertexts_still_decrypt_until_rotated(vault: Vault) -> None:
    key = Fernet.generate_key()
    legacy = Fernet(key).encrypt(b"polar_at_legacy").decode()
    rotated_vault = Vault([Fernet.generate_key(), key])
    assert rotated_vault.decrypt(SLOT, legacy) == "polar_at_legacy"
    assert rotated_vault.inspect(SLOT, legacy) is Freshness.STALE
    bound = rotated_vault.rotate(SLOT, legacy)
    assert rotated_vault.inspect(SLOT, bound) is Freshness.CURRENT
    with pytest.raises(SecretBindingError):
        rotated_vault.decrypt(SecretSlot("polar_integration", "access_token", "row-b"), bound)


def test_an_unknown_envelope_version_is_refused() -> None:
    key = Fernet.generate_key()
    future = Fernet(key).encrypt(b'cp:v9:{"s":"x"}').decode()
    with pytest.raises(VaultError, match="envelope version"):
        Vault([key]).decrypt(SLOT, future)


def test_a_secret_needs_its_row_id() -> None:
    with pytest.raises(ValueError, match="row's id"):
        SecretSlot("polar_integration", "access_token", "")
