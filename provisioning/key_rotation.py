"""Re-encrypt every stored secret with the newest key of POLAR_TOKEN_ENCRYPTION_KEY, bound to its
row and column.

Rotation: put the new key first in the list (the old ones stay to decrypt), deploy, run this, then
drop the old keys. It covers every secret: each integration's tokens and webhook secret, the PKCE
verifier of every connect attempt (used ones included), event forwarding's signing secrets and the
key canary that start-up checks.
Legacy ciphertexts (plain Fernet, from before secrets were bound to their rows) are rewritten into
the bound envelope.

Each row is rewritten in its own transaction (an integration under its token lock, so a refresh
running meanwhile never finds its refresh token's ciphertext changed under it), so an interrupted
rotation keeps what it did and a second run picks up the rest: a secret already bound and under the
first key is left as it is. A secret no configured key reads, or one moved from another row, is
reported and left alone; the rotation goes on with the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from provisioning.canary import repository as canaries
from provisioning.canary.models import KeyCanary
from provisioning.canary.service import TOKEN_KEYS, canary_slot
from provisioning.config import Settings
from provisioning.connect import repository as attempts
from provisioning.connect.service import pending_grant_slot, verifier_slot
from provisioning.connect.switch import refresh_token_slot
from provisioning.db import Database
from provisioning.forwarding import repository as forwarding
from provisioning.forwarding.models import EventForwardEndpoint
from provisioning.forwarding.service import SECRET_COLUMNS as FORWARDING_SECRET_COLUMNS
from provisioning.forwarding.service import secret_slot as forwarding_slot
from provisioning.integrations import repository
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import SECRET_COLUMNS, secret_slot, vault_for
from provisioning.integrations.tokens import lock_tokens_until_transaction_ends
from provisioning.vault import Freshness, SecretSlot, Vault, VaultError

ATTEMPTS_TABLE = "polar_connect_attempt"


@dataclass(frozen=True)
class Unreadable:
    """A stored secret the rotation could not read, and why (never the secret)."""

    slot: SecretSlot
    reason: str


@dataclass
class RotationReport:
    rewritten: int = 0  # secrets re-encrypted with the first key
    current: int = 0  # secrets already bound and under the first key: left as they were
    unreadable: list[Unreadable] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows visited per table

    @property
    def complete(self) -> bool:
        return not self.unreadable


# (table, rows done, rows in the table): called after each row.
Progress = Callable[[str, int, int], None]


def rotate_encryption(
    database: Database, settings: Settings, progress: Progress | None = None
) -> RotationReport:
    """Re-encrypt every readable secret not yet bound and under the first key. Raises VaultError
    only when no key is configured at all."""
    vault = vault_for(settings)
    report = RotationReport()
    tick = progress or (lambda table, done, total: None)

    with database.transaction() as session:
        integration_ids = repository.ids(session)
    for n, integration_id in enumerate(integration_ids, 1):
        with database.transaction() as session:
            lock_tokens_until_transaction_ends(session, settings, integration_id)
            integration = repository.get(session, integration_id, lock=True)
            if integration is not None:
                for column in SECRET_COLUMNS:
                    value = getattr(integration, column)
                    if value:
                        new = _rotated(vault, secret_slot(integration_id, column), value, report)
                        if new is not None:
                            setattr(integration, column, new)
        tick(PolarIntegration.__tablename__, n, len(integration_ids))
    report.rows[PolarIntegration.__tablename__] = len(integration_ids)

    with database.transaction() as session:
        nonces = attempts.nonces(session)
    for n, nonce in enumerate(nonces, 1):
        with database.transaction() as session:
            attempt = attempts.get_for_update(session, nonce)
            if attempt is not None and attempt.code_verifier:
                new = _rotated(vault, verifier_slot(nonce), attempt.code_verifier, report)
                if new is not None:
                    attempt.code_verifier = new
            if attempt is not None and attempt.pending_grant:
                new = _rotated(vault, pending_grant_slot(nonce), attempt.pending_grant, report)
                if new is not None:
                    attempt.pending_grant = new
        tick(ATTEMPTS_TABLE, n, len(nonces))
    report.rows[ATTEMPTS_TABLE] = len(nonces)

    # The old grants kept to retry deleting a previous organization's webhook endpoint.
    with database.transaction() as session:
        for held in attempts.pending_cleanups(session, limit=10_000):
            if held.refresh_token:
                new = _rotated(vault, refresh_token_slot(held.id), held.refresh_token, report)
                if new is not None:
                    held.refresh_token = new

    # Event forwarding's signing secrets (the current one, and the previous one while it overlaps).
    with database.transaction() as session:
        endpoint_ids = forwarding.endpoint_ids(session)
    for n, endpoint_id in enumerate(endpoint_ids, 1):
        with database.transaction() as session:
            endpoint = forwarding.endpoint(session, endpoint_id, lock=True)
            for column in FORWARDING_SECRET_COLUMNS if endpoint is not None else ():
                value = getattr(endpoint, column)
                if value:
                    new = _rotated(vault, forwarding_slot(endpoint_id, column), value, report)
                    if new is not None:
                        setattr(endpoint, column, new)
        tick(EventForwardEndpoint.__tablename__, n, len(endpoint_ids))
    report.rows[EventForwardEndpoint.__tablename__] = len(endpoint_ids)

    # Last, the key canary: processes started with only the newest key must still find it readable.
    with database.transaction() as session:
        canary = canaries.get(session, TOKEN_KEYS, lock=True) if canaries.table_exists(session) else None
        if canary is not None:
            new = _rotated(vault, canary_slot(), canary.ciphertext, report)
            if new is not None:
                canary.ciphertext = new
            report.rows[KeyCanary.__tablename__] = 1
            tick(KeyCanary.__tablename__, 1, 1)
    return report


def _rotated(vault: Vault, slot: SecretSlot, ciphertext: str, report: RotationReport) -> str | None:
    """The new ciphertext, or None when there is nothing to write (current, or unreadable)."""
    try:
        if vault.inspect(slot, ciphertext) is Freshness.CURRENT:
            report.current += 1
            return None
        new = vault.rotate(slot, ciphertext)
    except VaultError as exc:
        report.unreadable.append(Unreadable(slot, str(exc)))
        return None
    report.rewritten += 1
    return new
