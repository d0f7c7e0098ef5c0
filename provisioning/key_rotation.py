"""Re-encrypt every stored secret with the newest key of POLAR_TOKEN_ENCRYPTION_KEY.

Rotation: put the new key first in the list (the old ones stay to decrypt), deploy, run this, then
drop the old keys. Each integration is re-encrypted in its own transaction under its token lock, so
a refresh running meanwhile never finds its refresh token's ciphertext changed under it.
"""

from __future__ import annotations

from provisioning.config import Settings
from provisioning.connect import repository as attempts
from provisioning.db import Database
from provisioning.integrations import repository
from provisioning.integrations.service import vault_for
from provisioning.integrations.tokens import lock_tokens_until_transaction_ends

SECRET_COLUMNS = ("access_token", "refresh_token", "webhook_secret")


def rotate_encryption(database: Database, settings: Settings) -> int:
    """Returns how many integrations were re-encrypted."""
    vault = vault_for(settings)
    with database.transaction() as session:
        integration_ids = repository.ids(session)
    for integration_id in integration_ids:
        with database.transaction() as session:
            lock_tokens_until_transaction_ends(session, settings, integration_id)
            integration = repository.get(session, integration_id, lock=True)
            if integration is None:
                continue
            for name in SECRET_COLUMNS:
                value = getattr(integration, name)
                if value:
                    setattr(integration, name, vault.rotate(value))
    with database.transaction() as session:
        for attempt in attempts.unconsumed(session):
            attempt.code_verifier = vault.rotate(attempt.code_verifier)
    return len(integration_ids)
