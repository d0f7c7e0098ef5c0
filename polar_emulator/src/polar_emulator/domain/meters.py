"""Meters, kept API-shaped in ``store.collections["meters"]``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from polar_emulator.domain.store import Store, collection


def get_meter(store: Store, meter_id: str | UUID) -> dict[str, Any] | None:
    """The stored (API-shaped) meter, or None."""
    return collection(store, "meters").get(str(meter_id))


def meter_summary(meter: dict[str, Any]) -> dict[str, Any]:
    """The ``ProductPriceMeter`` shape a metered price embeds."""
    return {k: meter.get(k) for k in ("id", "name", "unit", "custom_label", "custom_multiplier")}
