"""Reading and writing a workspace's connections; tokens go in and out of the vault only here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from provisioning.config import PolarEnvironment, Settings
from provisioning.db import utcnow
from provisioning.integrations import repository
from provisioning.integrations.models import PolarIntegration
from provisioning.polar.errors import ProvisioningError
from provisioning.polar.oauth import TokenSet
from provisioning.vault import Vault


def vault_for(settings: Settings) -> Vault:
    return Vault(settings.token_encryption_keys)


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
    vault = vault_for(settings)
    integration.access_token = vault.encrypt(tokens.access_token)
    # Polar rotates refresh tokens; keep the old one only if none was returned.
    if tokens.refresh_token:
        integration.refresh_token = vault.encrypt(tokens.refresh_token)
    integration.token_expires_at = tokens.expires_at
    if tokens.scope:
        integration.scopes = tokens.scope
    integration.updated_at = utcnow()


def access_token(settings: Settings, integration: PolarIntegration) -> str:
    if not integration.access_token:
        raise ProvisioningError(
            "Polar is not connected for this workspace; connect Polar", needs_reconnect=True
        )
    return vault_for(settings).decrypt(integration.access_token)


def refresh_token(settings: Settings, integration: PolarIntegration) -> str | None:
    return vault_for(settings).decrypt(integration.refresh_token) if integration.refresh_token else None
