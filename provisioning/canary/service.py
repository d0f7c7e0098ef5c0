"""Check at start-up that POLAR_TOKEN_ENCRYPTION_KEY is this database's.

The first process started with keys writes the canary (after checking that the keys read a secret
already stored, if any: a deployment upgraded with the wrong keys must not bless them); every later
one decrypts it. Wrong keys, or none while the database holds secrets, raise a ConfigError naming
POLAR_TOKEN_ENCRYPTION_KEY, and the process stops before it serves or works on anything.
"""

from __future__ import annotations

import enum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.canary import repository
from provisioning.canary.models import KeyCanary
from provisioning.config import ConfigError, Settings
from provisioning.connect import repository as attempts
from provisioning.db import Database
from provisioning.integrations import repository as integrations
from provisioning.vault import SecretBindingError, SecretSlot, Vault, VaultError

TOKEN_KEYS = "token-encryption"
CANARY_VALUE = "connect-polar key canary"
WRONG_KEYS = (
    "POLAR_TOKEN_ENCRYPTION_KEY does not decrypt this database's key canary: these are not the keys "
    "its stored secrets were encrypted with"
)


class KeyCheck(enum.StrEnum):
    VERIFIED = "verified"  # the canary decrypts
    WRITTEN = "written"  # the first start with keys: the canary is stored now
    NO_KEYS = "no keys"  # no keys and no canary: connecting Polar is unavailable (development)
    NOT_MIGRATED = "not migrated"  # the table does not exist yet: ``flask db upgrade`` is pending


def canary_slot() -> SecretSlot:
    return SecretSlot(KeyCanary.__tablename__, "ciphertext", TOKEN_KEYS)


def verify_keys(database: Database, settings: Settings) -> KeyCheck:
    with database.transaction() as session:
        if not repository.table_exists(session):
            return KeyCheck.NOT_MIGRATED
        canary = repository.get(session, TOKEN_KEYS)
        if not settings.token_encryption_keys:
            if canary is None and not _stored_secret(session):
                return KeyCheck.NO_KEYS
            raise ConfigError(
                "POLAR_TOKEN_ENCRYPTION_KEY is missing, but this database holds secrets encrypted with it"
            )
        vault = Vault(settings.token_encryption_keys)
        if canary is not None:
            _check(vault, canary.ciphertext)
            return KeyCheck.VERIFIED
        stored = _stored_secret(session)
        if stored is not None and not _readable(vault, *stored):
            raise ConfigError(
                "POLAR_TOKEN_ENCRYPTION_KEY does not decrypt the secrets stored in this database: these "
                "are not the keys they were encrypted with"
            )
    try:
        with database.transaction() as session:
            repository.add(
                session, KeyCanary(name=TOKEN_KEYS, ciphertext=vault.encrypt(canary_slot(), CANARY_VALUE))
            )
    except IntegrityError:  # another process wrote it first: check theirs
        with database.transaction() as session:
            written = repository.get(session, TOKEN_KEYS)
            assert written is not None
            _check(vault, written.ciphertext)
        return KeyCheck.VERIFIED
    return KeyCheck.WRITTEN


def _check(vault: Vault, ciphertext: str) -> None:
    try:
        value = vault.decrypt(canary_slot(), ciphertext)
    except VaultError:
        raise ConfigError(WRONG_KEYS) from None
    if value != CANARY_VALUE:
        raise ConfigError(WRONG_KEYS)


def _stored_secret(session: Session) -> tuple[SecretSlot, str] | None:
    """One secret already stored (a connection's access token, else a connect attempt's verifier)."""
    found = integrations.any_access_token(session)
    if found is not None:
        integration_id, ciphertext = found
        return SecretSlot("polar_integration", "access_token", integration_id), ciphertext
    verifier = attempts.any_verifier(session)
    if verifier is not None:
        nonce, ciphertext = verifier
        return SecretSlot("polar_connect_attempt", "code_verifier", nonce), ciphertext
    return None


def _readable(vault: Vault, slot: SecretSlot, ciphertext: str) -> bool:
    try:
        vault.decrypt(slot, ciphertext)
    except SecretBindingError:
        return True  # a key read it (the row's binding is another matter, checked where it is used)
    except VaultError:
        return False
    return True


def check_canary(database: Database, settings: Settings) -> KeyCheck:
    """Read-only (the readiness check): the keys decrypt the stored canary. Raises ConfigError when
    they do not, or when keys are configured but no process has written the canary yet."""
    with database.transaction() as session:
        if not repository.table_exists(session):
            return KeyCheck.NOT_MIGRATED
        canary = repository.get(session, TOKEN_KEYS)
        ciphertext = canary.ciphertext if canary is not None else None
    if not settings.token_encryption_keys:
        if ciphertext is None:
            return KeyCheck.NO_KEYS
        raise ConfigError("POLAR_TOKEN_ENCRYPTION_KEY is missing, but this database has a key canary")
    if ciphertext is None:
        raise ConfigError(
            "POLAR_TOKEN_ENCRYPTION_KEY: no key canary written yet (no process started with keys)"
        )
    _check(Vault(settings.token_encryption_keys), ciphertext)
    return KeyCheck.VERIFIED
