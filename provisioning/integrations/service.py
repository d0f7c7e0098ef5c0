"""Reading and writing a workspace's connections; tokens go in and out of the vault only here."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from provisioning.config import PolarEnvironment, Settings
from provisioning.db import utcnow
from provisioning.ids import new_id
from provisioning.integrations import repository
from provisioning.integrations.models import PolarIntegration
from provisioning.polar.errors import ProvisioningError
from provisioning.polar.oauth import TokenSet
from provisioning.vault import SecretBindingError, SecretSlot, Vault

log = logging.getLogger(__name__)
# The encrypted columns of ``polar_integration``: each ciphertext is bound to its column and row.
SECRET_COLUMNS = ("access_token", "refresh_token", "webhook_secret")


def vault_for(settings: Settings) -> Vault:
    return Vault(settings.token_encryption_keys)


def secret_slot(integration_id: str, column: str) -> SecretSlot:
    """Where one of an integration's secrets is stored: what its ciphertext is bound to."""
    assert column in SECRET_COLUMNS, column
    return SecretSlot(PolarIntegration.__tablename__, column, integration_id)


class SecretIntegrityError(ProvisioningError):
    """A stored secret of the connection belongs to another row or column: nothing is sent to
    Polar with it, and the owner must reconnect."""


def integrity_error(integration_id: str, column: str, exc: SecretBindingError) -> SecretIntegrityError:
    """The error to raise (and log, for staff) when an integration's secret fails its binding."""
    log.error("integration %s: %s", integration_id, exc)
    return SecretIntegrityError(
        f"A stored Polar credential of this connection failed its integrity check ({column}); "
        "nothing was sent to Polar with it. Reconnect Polar from the billing page",
        needs_reconnect=True,
    )


def encrypt_secret(settings: Settings, integration: PolarIntegration, column: str, plaintext: str) -> str:
    """``plaintext`` encrypted for ``integration``'s ``column`` (the row gets its id first)."""
    if not integration.id:
        integration.id = new_id()
    return vault_for(settings).encrypt(secret_slot(integration.id, column), plaintext)


def decrypt_secret(settings: Settings, integration_id: str, column: str, ciphertext: str) -> str:
    """The secret in ``integration_id``'s ``column``; a moved ciphertext raises SecretIntegrityError."""
    try:
        return vault_for(settings).decrypt(secret_slot(integration_id, column), ciphertext)
    except SecretBindingError as exc:
        raise integrity_error(integration_id, column, exc) from None


def get_integration(
    session: Session, workspace_id: str, environment: str | None = None
) -> PolarIntegration | None:
    """The workspace's connection to ``environment`` (default: its only or first one)."""
    return repository.for_workspace(session, workspace_id, environment)


def get_or_create_integration(
    session: Session, workspace_id: str, environment: PolarEnvironment
) -> PolarIntegration:
    integration = repository.for_workspace(session, workspace_id, environment)
    return integration if integration is not None else repository.add(session, workspace_id, environment)


def workspace_name(session: Session, workspace_id: str) -> str:
    return repository.workspace_name(session, workspace_id)


def store_tokens(settings: Settings, integration: PolarIntegration, tokens: TokenSet) -> None:
    integration.access_token = encrypt_secret(settings, integration, "access_token", tokens.access_token)
    # Polar rotates refresh tokens; keep the old one only if none was returned.
    if tokens.refresh_token:
        integration.refresh_token = encrypt_secret(
            settings, integration, "refresh_token", tokens.refresh_token
        )
    integration.token_expires_at = tokens.expires_at
    if tokens.scope:
        integration.scopes = tokens.scope
    integration.grant_id = new_id()  # a new grant: runs of the previous one stop
    integration.token_refresh_unanswered_at = None
    integration.updated_at = utcnow()


def access_token(settings: Settings, integration: PolarIntegration) -> str:
    if not integration.access_token:
        raise ProvisioningError(
            "Polar is not connected for this workspace; connect Polar", needs_reconnect=True
        )
    return decrypt_secret(settings, integration.id, "access_token", integration.access_token)


def refresh_token(settings: Settings, integration: PolarIntegration) -> str | None:
    if not integration.refresh_token:
        return None
    return decrypt_secret(settings, integration.id, "refresh_token", integration.refresh_token)
