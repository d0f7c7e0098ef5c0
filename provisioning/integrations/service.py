"""Reading and writing a workspace's integration; tokens go in and out of the vault only here."""

from __future__ import annotations

from sqlalchemy import select, table
from sqlalchemy.orm import Session
from sqlalchemy.sql import column

from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.polar.oauth import TokenSet
from provisioning.vault import Vault

# The web layer owns ``workspace``; the domain only reads its name.
workspace_table = table("workspace", column("id"), column("name"))


def vault_for(settings: Settings) -> Vault:
    return Vault(settings.token_encryption_keys)


def get_integration(session: Session, workspace_id: str) -> PolarIntegration | None:
    return session.scalars(
        select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id)
    ).first()


def get_or_create_integration(session: Session, workspace_id: str, environment: str) -> PolarIntegration:
    integration = get_integration(session, workspace_id)
    if integration is None:
        integration = PolarIntegration(
            workspace_id=workspace_id,
            environment=environment,
            status=IntegrationStatus.CONNECTING.value,
            granted_organization_ids=[],
            reachable_organizations=[],
        )
        session.add(integration)
    return integration


def workspace_name(session: Session, workspace_id: str) -> str:
    name = session.execute(
        select(workspace_table.c.name).where(workspace_table.c.id == workspace_id)
    ).scalar()
    return str(name or "Workspace")


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
        from provisioning.polar.errors import ProvisioningError

        raise ProvisioningError(
            "Polar is not connected for this workspace; connect Polar", needs_reconnect=True
        )
    return vault_for(settings).decrypt(integration.access_token)


def refresh_token(settings: Settings, integration: PolarIntegration) -> str | None:
    return vault_for(settings).decrypt(integration.refresh_token) if integration.refresh_token else None
