"""``api_key``: a workspace's keys for the tenant API. Never the key itself: its SHA-256 hash, and
the lookup id (also part of the key) it is found by."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.config import PolarEnvironment
from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow
from provisioning.ids import new_id


class KeyMode(enum.StrEnum):
    """What owners call a key's environment: a test key reads the sandbox connection, a live key
    the production connection."""

    TEST = "test"
    LIVE = "live"

    @property
    def environment(self) -> PolarEnvironment:
        return PolarEnvironment.SANDBOX if self is KeyMode.TEST else PolarEnvironment.PRODUCTION

    @property
    def prefix(self) -> str:
        """The visible start of every key of this mode."""
        return f"cp_{self.value}_"

    @property
    def label(self) -> str:
        return "Test mode" if self is KeyMode.TEST else "Live mode"

    @classmethod
    def of(cls, environment: str) -> KeyMode:
        return cls.TEST if environment == PolarEnvironment.SANDBOX else cls.LIVE


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (
        Index("ix_api_key_workspace_id_created_at", "workspace_id", "created_at"),
        # One key per form sent: a reload or a double click that sends it again creates none.
        UniqueConstraint("workspace_id", "create_nonce", name="uq_api_key_workspace_id_create_nonce"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(String(36), ForeignKey("workspace.id", ondelete="CASCADE"))
    # The connection the key reads: sandbox (a test key) or production (a live key).
    environment: Mapped[PolarEnvironment] = mapped_column(enum_column_type(PolarEnvironment, 16))
    name: Mapped[str] = mapped_column(String(100))
    # The key's second part, in plain: the key is found by it, then its hash compared.
    lookup_id: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the whole key, hex
    created_by_user_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Updated at most once a minute per key (USE_RECORD_INTERVAL), not on every call.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_user_id: Mapped[str | None] = mapped_column(String(36))
    # The nonce of the owner's create form (none from the CLI).
    create_nonce: Mapped[str | None] = mapped_column(String(64))

    @property
    def mode(self) -> KeyMode:
        return KeyMode.of(self.environment)

    @property
    def display_prefix(self) -> str:
        """What identifies the key to people without revealing it: ``cp_test_<lookup id>``."""
        return f"{self.mode.prefix}{self.lookup_id}"

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and not self.expired(now)
