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


def __getattr__(name: str) -> object:
    # plan_diff reads Polar, so it lives with the reconcile steps; re-exported here lazily
    # (an eager import would be circular).
    if name == "plan_diff":
        from provisioning.reconcile.diff import plan_diff

        return plan_diff
    raise AttributeError(name)
