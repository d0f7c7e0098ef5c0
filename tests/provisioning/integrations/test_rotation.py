"""Key rotation: after ``rotate_encryption`` the newest key alone decrypts every stored secret."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from provisioning.integrations.models import PolarIntegration
from provisioning.key_rotation import rotate_encryption
from provisioning.runs.jobs import provision
from provisioning.vault import Vault, VaultError


def test_rotation_re_encrypts_tokens_and_webhook_secret_with_the_new_key(
    session, database, settings, connect
):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == "succeeded"
    session.expire_all()
    integration = session.get(PolarIntegration, connected.integration.id)
    old_vault = Vault(settings.token_encryption_keys)
    before = {
        c: old_vault.decrypt(getattr(integration, c))
        for c in ("access_token", "refresh_token", "webhook_secret")
    }

    new_key = Fernet.generate_key()
    rotated_settings = replace(settings, token_encryption_keys=[new_key, *settings.token_encryption_keys])
    assert rotate_encryption(database, rotated_settings) == 1

    session.expire_all()
    integration = session.get(PolarIntegration, connected.integration.id)
    new_only = Vault([new_key])
    for column, plaintext in before.items():
        assert new_only.decrypt(getattr(integration, column)) == plaintext
        with pytest.raises(VaultError):
            old_vault.decrypt(getattr(integration, column))
    # The platform keeps working with the new key alone.
    again = provision(_new_run(session, integration), replace(settings, token_encryption_keys=[new_key]))
    assert again["status"] == "succeeded"


def _new_run(session, integration) -> str:
    from provisioning.runs.service import create_run

    run = create_run(session, integration, trigger="cli")
    session.commit()
    return run.id
