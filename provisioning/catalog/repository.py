"""Queries on ``plan_catalog_revision``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.catalog.loader import parse_catalog
from provisioning.catalog.model import Catalog
from provisioning.catalog.models import PlanCatalogRevision


def remember(session: Session, catalog: Catalog) -> None:
    """Keep the catalog's text under its revision (once; a catalog built in code has no text)."""
    if not catalog.text or session.get(PlanCatalogRevision, catalog.revision) is not None:
        return
    savepoint = session.begin_nested()
    session.add(PlanCatalogRevision(revision=catalog.revision, source_text=catalog.text))
    try:
        savepoint.commit()
    except IntegrityError:  # another run stored the same revision first: it is the same text
        savepoint.rollback()


def load_revision(session: Session, revision: str) -> Catalog | None:
    text = session.scalar(
        select(PlanCatalogRevision.source_text).where(PlanCatalogRevision.revision == revision)
    )
    if text is None:
        return None
    catalog = parse_catalog(text, source=f"catalog revision {revision}")
    return catalog if catalog.revision == revision else None
