"""``polar_connect_attempt``: the server-side half of an OAuth state (nonce, PKCE verifier)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.config import PolarEnvironment
from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class PolarConnectAttempt(Base):
    """One click on Connect Polar. Consumed by the first callback that presents its nonce."""

    __tablename__ = "polar_connect_attempt"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workspace.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    environment: Mapped[PolarEnvironment] = mapped_column(enum_column_type(PolarEnvironment, 16))
    code_verifier: Mapped[str] = mapped_column(Text)  # encrypted
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the attempt stored its connection: an older attempt of the same workspace and
    # environment that comes back later is refused (the newer connect wins).
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The Polar account (e-mail) the attempt's grant belongs to, when Polar told us.
    account_email: Mapped[str | None] = mapped_column(String(320))
    # A reconnect that would switch account or organization waits for the owner's confirmation:
    # the new grant (tokens, account, organizations), encrypted, until confirmed or cancelled.
    pending_grant: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SwitchCleanup(enum.StrEnum):
    DONE = "done"  # our endpoint in the old organization is deleted and the old grant revoked
    PENDING = "pending"  # deleting it failed: the worker retries with the old grant
    ABANDONED = "abandoned"  # the old grant no longer works: nothing more we can do


class PolarConnectionSwitch(Base):
    """A connection moved to another Polar account or organization, confirmed by the owner. It
    keeps what the page shows as the previous organization (its products stay there at Polar), the
    retired webhook URL segment (late deliveries there are acknowledged and ignored) and, while the
    old endpoint's deletion is pending, the old grant's refresh token (encrypted) to retry it."""

    __tablename__ = "polar_connection_switch"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[PolarEnvironment] = mapped_column(enum_column_type(PolarEnvironment, 16))
    from_account_id: Mapped[str | None] = mapped_column(String(64))
    from_account_email: Mapped[str | None] = mapped_column(String(320))
    from_organization: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {id, name, slug}
    products: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list
    )  # [{plan_id, polar_product_id}]
    webhook_path_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_endpoint_id: Mapped[str | None] = mapped_column(String(64))
    refresh_token: Mapped[str | None] = mapped_column(Text)  # encrypted; only while cleanup is pending
    cleanup: Mapped[SwitchCleanup] = mapped_column(enum_column_type(SwitchCleanup, 16))
    cleanup_attempts: Mapped[int] = mapped_column(Integer, default=0)
    cleanup_error: Mapped[str | None] = mapped_column(Text)
    switched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cleaned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
