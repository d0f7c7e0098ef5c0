"""``catalog_drift``: one row per connection, Polar object and field that was changed at Polar away
from the catalog. A row is kept once resolved (``resolved_at``) and opened again should the same
field drift again."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow
from provisioning.ids import new_id

PRODUCT = "product"
BENEFIT = "benefit"


class Observation(enum.StrEnum):
    """What drift made of a product or benefit Polar sent."""

    NOT_OURS = "not_ours"  # not an object the platform manages
    COMPARED = "compared"  # compared with the catalog; drift opened or resolved
    STALE = "stale"  # older than a version compared before: not compared again


class CatalogDrift(Base):
    __tablename__ = "catalog_drift"
    __table_args__ = (UniqueConstraint("integration_id", "polar_id", "field"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE")
    )
    object_type: Mapped[str] = mapped_column(String(16))  # product | benefit
    polar_id: Mapped[str] = mapped_column(String(64))
    catalog_id: Mapped[str] = mapped_column(String(64))  # the plan's or the benefit's id
    field: Mapped[str] = mapped_column(String(32))  # name, description, is_archived, prices, ...
    # Both values in words ("$29.00", "“Pro (monthly)”"), as the message says them.
    catalog_value: Mapped[str | None] = mapped_column(Text)
    polar_value: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class CatalogObservation(Base):
    """The newest version of each managed object drift compared (Polar's ``modified_at``, else its
    ``created_at``): Polar does not order its events, and an older ``product.updated`` arriving
    after a newer one would otherwise reopen drift the newer one resolved."""

    __tablename__ = "catalog_observation"
    __table_args__ = (UniqueConstraint("integration_id", "polar_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("polar_integration.id", ondelete="CASCADE")
    )
    polar_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[datetime | None] = mapped_column(UTCDateTime())
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
