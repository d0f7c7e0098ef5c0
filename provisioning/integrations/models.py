"""``polar_integration`` and ``polar_product_mapping``, with the seed document's names."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioning.config import PolarEnvironment
from provisioning.db import Base, UTCDateTime, enum_column_type, trigram_index, utcnow
from provisioning.ids import new_id


class IntegrationStatus(enum.StrEnum):
    NOT_CONNECTED = "not_connected"
    CONNECTING = "connecting"
    AWAITING_ORGANIZATION = "awaiting_organization"
    PROVISIONING = "provisioning"
    READY = "ready"
    FAILED = "failed"
    NEEDS_RECONNECT = "needs_reconnect"


class PolarIntegration(Base):
    """A workspace's connection to one Polar environment: at most one per (workspace, environment),
    so test mode (sandbox) and live mode (production) live side by side. Token columns hold
    MultiFernet ciphertext, never plaintext."""

    __tablename__ = "polar_integration"
    __table_args__ = (
        UniqueConstraint("workspace_id", "environment"),
        # The support console lists connections by latest activity, all or by status.
        Index("ix_polar_integration_updated_at_id", "updated_at", "id"),
        Index("ix_polar_integration_status_updated_at_id", "status", "updated_at", "id"),
        trigram_index("ix_polar_integration_polar_org_id_trgm", "polar_org_id"),
        trigram_index("ix_polar_integration_polar_org_slug_trgm", "polar_org_slug"),
        trigram_index("ix_polar_integration_polar_org_name_trgm", "polar_org_name"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspace.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[PolarEnvironment] = mapped_column(
        enum_column_type(PolarEnvironment, 16), default=PolarEnvironment.SANDBOX
    )
    status: Mapped[IntegrationStatus] = mapped_column(
        enum_column_type(IntegrationStatus, 32), default=IntegrationStatus.NOT_CONNECTED
    )
    connected_by_user_id: Mapped[str | None] = mapped_column(String(36))

    # Encrypted OAuth tokens
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A new value at every connect, kept by refreshes: a run tells "my grant, refreshed" (go on)
    # from "another grant" (a reconnect: stop) by it.
    grant_id: Mapped[str | None] = mapped_column(String(36))
    # Set when a refresh was sent and its answer lost (Polar may have rotated the pair); cleared
    # when a pair is stored. A later invalid_grant then says what happened.
    token_refresh_unanswered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The health monitor's last check: when, whether all was well, and what it found.
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    health_ok: Mapped[bool | None] = mapped_column(Boolean)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    scopes: Mapped[str | None] = mapped_column(Text)
    # Organizations the grant was narrowed to at consent; empty means all of the user's.
    granted_organization_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Organizations the token reached when last checked (id, name, slug), for the chooser.
    reachable_organizations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    polar_user_id: Mapped[str | None] = mapped_column(String(64))

    # Polar organization info
    polar_org_id: Mapped[str | None] = mapped_column(String(64))
    polar_org_slug: Mapped[str | None] = mapped_column(String(255))
    polar_org_name: Mapped[str | None] = mapped_column(String(255))

    # Provisioning state
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    catalog_revision: Mapped[str | None] = mapped_column(String(64))
    webhook_endpoint_id: Mapped[str | None] = mapped_column(String(64))
    webhook_secret: Mapped[str | None] = mapped_column(Text)  # encrypted
    # The unguessable path segment of this integration's webhook URL.
    webhook_path_token: Mapped[str] = mapped_column(
        String(64), unique=True, default=lambda: new_id().replace("-", "")
    )
    last_error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    product_mappings: Mapped[list[PolarProductMapping]] = relationship(
        back_populates="integration", cascade="all, delete-orphan", order_by="PolarProductMapping.plan_id"
    )
    meter_mappings: Mapped[list[PolarMeterMapping]] = relationship(
        back_populates="integration", cascade="all, delete-orphan", order_by="PolarMeterMapping.meter_id"
    )


class PolarProductMapping(Base):
    __tablename__ = "polar_product_mapping"
    __table_args__ = (UniqueConstraint("integration_id", "plan_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), index=True
    )
    plan_id: Mapped[str] = mapped_column(String(64))
    polar_product_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    integration: Mapped[PolarIntegration] = relationship(back_populates="product_mappings")


class PolarMeterMapping(Base):
    """Which Polar meter is a catalog meter in this connection's organization, saved by each run
    with the product mappings: Polar's customer states and meter events name meters by Polar's id
    only."""

    __tablename__ = "polar_meter_mapping"
    __table_args__ = (UniqueConstraint("integration_id", "meter_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), index=True
    )
    meter_id: Mapped[str] = mapped_column(String(64))  # the catalog's
    polar_meter_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    integration: Mapped[PolarIntegration] = relationship(back_populates="meter_mappings")
