"""``catalog_drift``: one row per connection, Polar object and field that was changed at Polar away
from the catalog. A row is kept once resolved (``resolved_at``) and opened again should the same
field drift again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow
from provisioning.ids import new_id

PRODUCT = "product"
BENEFIT = "benefit"


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
