"""One Polar operation and the webhook events it raises.

Polar sends most events from the request's transaction, in a known order, and the rest from
background jobs (NOTES 10): benefit grants one job per benefit, and ``customer.state_changed``
from a job **debounced per customer** (about 1 s after the last trigger), so a burst of triggers
(a subscription created, two grants) gives one ``customer.state_changed`` carrying the whole,
final state. A :class:`Flow` stands for one such burst: :meth:`Flow.emit` raises an event now,
:meth:`Flow.state_changed` notes a trigger, and :meth:`Flow.finish` sends one
``customer.state_changed`` per customer touched, after everything else.
"""

from __future__ import annotations

import copy
from typing import Any

from polar_emulator.domain.customer_state import emit_state_changed
from polar_emulator.domain.store import Store
from polar_emulator.domain.webhooks.events import emit_event


class Flow:
    def __init__(self, store: Store, organization_id: str) -> None:
        self.store = store
        self.organization_id = organization_id
        self.types: list[str] = []  # what was emitted, in order (for callers and tests)
        self._changed: dict[str, dict[str, Any]] = {}

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Raise ``event_type`` now, with a snapshot of ``data`` (as Polar serializes at once)."""
        emit_event(self.store, self.organization_id, event_type, copy.deepcopy(data))
        self.types.append(event_type)

    def state_changed(self, customer: dict[str, Any]) -> None:
        """A trigger of the debounced ``customer.state_changed`` job for ``customer``."""
        self._changed[customer["id"]] = customer

    def state_changed_now(self, customer: dict[str, Any]) -> None:
        """The inline ``customer.state_changed`` Polar sends right after ``customer.*`` events."""
        emit_state_changed(self.store, customer)
        self.types.append("customer.state_changed")

    def finish(self) -> list[str]:
        """Send the debounced ``customer.state_changed`` events; returns every type emitted."""
        for customer in self._changed.values():
            self.state_changed_now(customer)
        self._changed.clear()
        return self.types
