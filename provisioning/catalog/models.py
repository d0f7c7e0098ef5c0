"""``plan_catalog_revision``: every catalog revision a run provisioned, kept so a later run can
provision exactly that revision ("Go live" gives production the sandbox's catalog)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.db import Base, UTCDateTime, utcnow


class PlanCatalogRevision(Base):
    __tablename__ = "plan_catalog_revision"

    revision: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The catalog file's text as it was: parsing it again gives the same revision.
    source_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
