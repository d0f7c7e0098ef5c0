"""The plan catalog: plans, benefits and meters every connected workspace gets in Polar."""

from provisioning.catalog.loader import CatalogError, build_catalog, load_catalog, parse_catalog
from provisioning.catalog.model import Benefit, Catalog, Meter, Plan, Price

__all__ = [
    "Benefit",
    "Catalog",
    "CatalogError",
    "Meter",
    "Plan",
    "Price",
    "build_catalog",
    "load_catalog",
    "parse_catalog",
]
