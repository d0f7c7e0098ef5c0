"""Customer meters: one row per (customer, meter) once the customer has usage or credits on it.

Rows live in ``store.collections["customer_meters"]`` in the ``CustomerMeter`` shape without
``customer`` and ``meter`` (added by :func:`serialize_customer_meter`), plus ``organization_id``
and ``_reset_at``. As Polar computes them (NOTES 10.6, ``customer_meter/service.py``):

- ``consumed_units``: the meter's aggregation over the customer's matching events (by
  ``customer_id``, or by ``external_customer_id`` equal to the customer's ``external_id``)
  ingested since the meter was last reset (``_reset_at`` is the position in the event log then);
- ``credited_units``: the units of the customer's granted ``meter_credit`` benefits on the meter;
- ``balance = credited - consumed``, which may go negative.

Polar updates the rows from a job debounced 15 s after the customer's last event; here
:func:`refresh` runs at once (after an ingest, a grant change, a reset, or when read), and
``modified_at`` moves only when a number changes.
"""

from __future__ import annotations

import copy
from typing import Any

from polar_emulator.domain.customers import customers_of, serialize_customer
from polar_emulator.domain.events import aggregate, event_matches, events_of
from polar_emulator.domain.grants import active_grants, benefit_of
from polar_emulator.domain.store import Store, now
from polar_emulator.tokens import new_id

_STATE_KEYS = ("id", "created_at", "modified_at", "meter_id", "consumed_units", "credited_units", "balance")


def customer_meters_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["customer_meters"]


def _rows_by_key(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["customer_id"], r["meter_id"]): r for r in customer_meters_of(store).values()}


def _customer_events(store: Store, customer: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The customer's events with their position in the event log (ingest order)."""
    external_id = customer["external_id"]
    return [
        (position, e)
        for position, e in enumerate(events_of(store).values())
        if e["organization_id"] == customer["organization_id"]
        and (
            e["customer_id"] == customer["id"]
            or (external_id is not None and e["external_customer_id"] == external_id)
        )
    ]


def credited_units(store: Store, customer: dict[str, Any], meter_id: str) -> int:
    total = 0
    for grant in active_grants(store, customer["id"]):
        benefit = benefit_of(store, grant["benefit_id"], grant.get("_benefit")) or {}
        props = benefit.get("properties") or {}
        if benefit.get("type") == "meter_credit" and props.get("meter_id") == meter_id:
            total += int(props.get("units") or 0)
    return total


def refresh(store: Store, customer: dict[str, Any]) -> bool:
    """Bring the customer's rows up to date; True when a row was created or a number changed."""
    events = _customer_events(store, customer)
    rows = _rows_by_key(store)
    changed = False
    for meter in store.collections["meters"].values():
        if meter.get("organization_id") != customer["organization_id"]:
            continue
        row = rows.get((customer["id"], meter["id"]))
        since = row["_reset_at"] if row is not None else 0
        matched = [e for position, e in events if position >= since and event_matches(meter["filter"], e)]
        credited = credited_units(store, customer, meter["id"])
        created = row is None
        if row is None:
            if not matched and not credited:
                continue
            row = {
                "id": new_id(),
                "created_at": now(store),
                "modified_at": None,
                "customer_id": customer["id"],
                "meter_id": meter["id"],
                "consumed_units": 0.0,
                "credited_units": 0,
                "balance": 0.0,
                "organization_id": customer["organization_id"],
                "_reset_at": 0,
            }
            customer_meters_of(store)[row["id"]] = row
            changed = True
        consumed = aggregate(meter.get("aggregation") or {}, matched)
        if (row["consumed_units"], row["credited_units"]) != (consumed, credited):
            # A new row is written with its numbers at once; modified_at is set by later updates.
            if not created:
                row["modified_at"] = now(store)
            row.update(consumed_units=consumed, credited_units=credited, balance=credited - consumed)
            changed = True
    return changed


def reset(store: Store, customer: dict[str, Any], meter_ids: set[str]) -> None:
    """Polar's ``meter.reset``: consumption on these meters counts from now on."""
    position = len(events_of(store))
    for (customer_id, meter_id), row in _rows_by_key(store).items():
        if customer_id == customer["id"] and meter_id in meter_ids:
            row["_reset_at"] = position
    refresh(store, customer)


def state_meters(store: Store, customer: dict[str, Any]) -> list[dict[str, Any]]:
    """``CustomerStateMeter`` items: the customer's rows on meters that are not archived."""
    refresh(store, customer)
    meters = store.collections["meters"]
    return [
        {k: copy.deepcopy(row[k]) for k in _STATE_KEYS}
        for row in customer_meters_of(store).values()
        if row["customer_id"] == customer["id"] and not meters[row["meter_id"]].get("archived_at")
    ]


def refresh_all(store: Store, organization_ids: set[str]) -> None:
    """Refresh every live customer of these organizations (before a list is read)."""
    for customer in customers_of(store).values():
        if customer["organization_id"] in organization_ids and customer["deleted_at"] is None:
            refresh(store, customer)


def serialize_customer_meter(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    """``CustomerMeter``: the row with its ``customer`` and ``meter``."""
    data = {k: copy.deepcopy(v) for k, v in row.items() if k != "organization_id" and not k.startswith("_")}
    data["customer"] = serialize_customer(customers_of(store)[row["customer_id"]])
    data["meter"] = copy.deepcopy(store.collections["meters"][row["meter_id"]])
    return data
