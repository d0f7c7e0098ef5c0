"""Creating, verifying and revoking API keys. Functions flush at most; callers commit.

A key reads ``cp_<mode>_<lookup id>_<secret>``: ``cp_test_`` or ``cp_live_``, 12 lowercase letters
and digits that find its row, and 43 URL-safe characters (32 random bytes). Only the SHA-256 of the
whole key is stored, compared in constant time; the platform never holds the key after showing it
once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from provisioning.api_keys import repository
from provisioning.api_keys.models import ApiKey, KeyMode
from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.errors import ConnectPolarError
from provisioning.integrations import repository as integrations
from provisioning.integrations.models import IntegrationStatus, PolarIntegration

LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
LOOKUP_LENGTH = 12
SECRET_BYTES = 32  # 43 URL-safe characters
KEY_RE = re.compile(r"cp_(?P<mode>test|live)_(?P<lookup>[a-z0-9]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
NAME_MAX = 100
MAX_EXPIRY_DAYS = 3650
# last_used_at is written at most this often per key: a busy key costs no write per call.
USE_RECORD_INTERVAL = timedelta(minutes=1)
# Compared against when no row matches, so an unknown lookup id costs what a wrong secret costs.
_NO_KEY_HASH = hashlib.sha256(b"no such key").hexdigest()


class ApiKeyRefused(ConnectPolarError):
    """A key cannot be created as asked; the message says why, for people, and ``field`` which
    input it is about (``name``, ``mode`` or ``expires``)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class AlreadyCreated(ConnectPolarError):
    """The create form was sent again (a reload, a double click): its key exists and is not shown
    again."""

    def __init__(self, key: ApiKey) -> None:
        super().__init__(
            f"The key {key.name} ({key.display_prefix}…) was already created from this form; it is "
            "shown only once. If it was not copied, revoke it and create another."
        )
        self.key = key


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    plaintext: str = field(repr=False)  # shown once, then forgotten


def audit_details(key: ApiKey, *, with_expiry: bool = False) -> dict[str, str | None]:
    """What the audit trail says of a key (never the key): its name, mode and visible prefix."""
    details: dict[str, str | None] = {"name": key.name, "mode": key.mode.value, "prefix": key.display_prefix}
    if with_expiry:
        details["expires_at"] = key.expires_at.isoformat() if key.expires_at else None
    return details


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", errors="replace")).hexdigest()


def _new_lookup_id(session: Session) -> str:
    while True:  # 36^12 ids: a collision is all but impossible, and then simply redrawn
        lookup = "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(LOOKUP_LENGTH))
        if not repository.lookup_id_taken(session, lookup):
            return lookup


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ApiKeyRefused("Give the key a name, such as where it is used.", "name")
    if len(name) > NAME_MAX:
        raise ApiKeyRefused(f"The name is too long: at most {NAME_MAX} characters.", "name")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ApiKeyRefused("The name contains characters that are not allowed.", "name")
    return name


def available_modes(session: Session, settings: Settings, workspace_id: str) -> list[KeyMode]:
    """The modes a key can be created in: those where the workspace has a connection (of any
    status but not connected) to an environment this platform serves."""
    out = []
    for mode in KeyMode:
        integration = integrations.for_workspace(session, workspace_id, mode.environment)
        if (
            integration is not None
            and integration.status != IntegrationStatus.NOT_CONNECTED
            and settings.serves(mode.environment)
        ):
            out.append(mode)
    return out


def refusal_for_mode(mode: KeyMode) -> str:
    if mode is KeyMode.TEST:
        return (
            "This workspace has no test-mode Polar connection, so a test key would have nothing to "
            "read. Connect test mode on the billing page first, or create a live key."
        )
    return (
        "This workspace has no live-mode Polar connection, so a live key would have nothing to read. "
        "Go live on the billing page first, or create a test key."
    )


def create(
    session: Session,
    settings: Settings,
    *,
    workspace_id: str,
    name: str,
    mode: KeyMode,
    expires_in_days: int | None = None,
    user_id: str | None = None,
    now: datetime | None = None,
    nonce: str | None = None,
) -> CreatedKey:
    """A new key for the workspace's connection in ``mode``; its plaintext is returned once.

    ``nonce``: the create form's own; a form sent again raises AlreadyCreated instead of making a
    second key (a concurrent double send is stopped by the unique constraint at commit)."""
    now = now or utcnow()
    if nonce:
        existing = repository.by_create_nonce(session, workspace_id, nonce)
        if existing is not None:
            raise AlreadyCreated(existing)
    clean = _clean_name(name)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ApiKeyRefused(f"A key expires after 1 to {MAX_EXPIRY_DAYS} days, or never.", "expires")
    if mode not in available_modes(session, settings, workspace_id):
        raise ApiKeyRefused(refusal_for_mode(mode), "mode")
    lookup = _new_lookup_id(session)
    plaintext = f"{mode.prefix}{lookup}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = repository.add(
        session,
        ApiKey(
            workspace_id=workspace_id,
            environment=mode.environment,
            name=clean,
            lookup_id=lookup,
            key_hash=hash_key(plaintext),
            created_by_user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            create_nonce=nonce or None,
        ),
    )
    return CreatedKey(key, plaintext)


@dataclass(frozen=True)
class VerifiedKey:
    key: ApiKey
    connection: PolarIntegration | None  # the workspace's, in the key's environment, read with it


def verify(session: Session, presented: str, now: datetime | None = None) -> ApiKey | None:
    """The key ``presented`` is, if it is one and may be used now (not revoked, not expired);
    ``None`` for anything else, whatever the reason."""
    verified = verify_with_connection(session, presented, now)
    return verified.key if verified is not None else None


def verify_with_connection(
    session: Session, presented: str, now: datetime | None = None
) -> VerifiedKey | None:
    """:func:`verify`, with the key's connection read in the same statement (the tenant API's)."""
    now = now or utcnow()
    digest = hash_key(presented)
    match = KEY_RE.fullmatch(presented)
    found = repository.by_lookup_id_with_connection(session, match["lookup"]) if match else None
    if found is None or match is None or found[0].mode != match["mode"]:
        hmac.compare_digest(digest, _NO_KEY_HASH)
        return None
    key, connection = found
    if not hmac.compare_digest(digest, key.key_hash):
        return None
    return VerifiedKey(key, connection) if key.usable(now) else None


def record_use(session: Session, key: ApiKey, now: datetime | None = None) -> bool:
    """Note that the key was used now, unless that was noted less than a minute ago. True when
    it wrote (the caller commits; most calls write nothing)."""
    now = now or utcnow()
    if key.last_used_at is not None and key.last_used_at > now - USE_RECORD_INTERVAL:
        return False
    return repository.record_use(session, key.id, now, now - USE_RECORD_INTERVAL)


def keys_of(session: Session, workspace_id: str) -> list[ApiKey]:
    return repository.for_workspace(session, workspace_id)


def key_in(session: Session, workspace_id: str, key_id: str) -> ApiKey | None:
    """One of the workspace's keys; another workspace's key is as good as unknown."""
    return repository.in_workspace(session, workspace_id, key_id)


def find(session: Session, reference: str) -> ApiKey | None:
    """A key by its id or by what people see of it (``cp_test_<lookup id>``), for operators."""
    reference = reference.strip()
    for mode in KeyMode:
        if reference.startswith(mode.prefix):
            key = repository.by_lookup_id(session, reference.removeprefix(mode.prefix))
            return key if key is not None and key.mode is mode else None
    return repository.get(session, reference)


def revoke(session: Session, key: ApiKey, *, user_id: str | None = None, now: datetime | None = None) -> bool:
    """Revoke the key at once; ``False`` if it already was (nothing changes)."""
    now = now or utcnow()
    revoked = repository.revoke(session, key.id, now, user_id)
    session.refresh(key)
    return revoked
