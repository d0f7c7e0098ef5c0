"""``key_canary``: one row per kind of key, holding a known value encrypted with it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow


class KeyCanary(Base):
    """Written by the first process started with keys; read by every later one. Never a secret:
    its plaintext is a constant, only whether the keys decrypt it matters."""

    __tablename__ = "key_canary"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
