"""``polar_connect_attempt``: the server-side half of an OAuth state (nonce, PKCE verifier)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.config import PolarEnvironment
from provisioning.db import Base, UTCDateTime, enum_column_type, utcnow


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
