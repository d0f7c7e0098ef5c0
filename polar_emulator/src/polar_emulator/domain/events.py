"""Usage events and the meter arithmetic (filters, aggregations); customer meters are in
``customer_meters.py``.

Events live in ``store.collections["events"]`` in the ``UserEvent`` shape (``customer`` left
out) plus ``external_id``.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from polar_emulator.domain.store import Store


def events_of(store: Store) -> dict[str, dict[str, Any]]:
    return store.collections["events"]


_OPERATORS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _property(event: dict[str, Any], path: str) -> Any:
    if path in ("name", "source", "timestamp"):
        return event[path]
    value: Any = event["metadata"]
    for part in path.removeprefix("metadata.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _like(value: Any, pattern: Any) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(pattern))
    return re.fullmatch(regex, str(value), re.DOTALL) is not None


def _clause_matches(clause: dict[str, Any], event: dict[str, Any]) -> bool:
    if "clauses" in clause:
        return event_matches(clause, event)
    value = _property(event, clause["property"])
    if value is None:
        return False
    op, expected = clause["operator"], clause["value"]
    if op == "like":
        return _like(value, expected)
    if op == "not_like":
        return not _like(value, expected)
    try:
        if isinstance(expected, bool) or isinstance(value, bool):
            return _OPERATORS[op](value, expected)
        if isinstance(expected, int | float) and not isinstance(value, int | float):
            value = float(value)
        elif isinstance(value, int | float) and isinstance(expected, str):
            expected = float(expected)
        return _OPERATORS[op](value, expected)
    except (TypeError, ValueError):
        return False


def event_matches(filter_: dict[str, Any], event: dict[str, Any]) -> bool:
    """Does ``event`` pass a meter's ``Filter`` (``{conjunction, clauses}``, nesting allowed)?"""
    results = (_clause_matches(c, event) for c in filter_.get("clauses", []))
    return all(results) if filter_.get("conjunction", "and") == "and" else any(results)


def aggregate(aggregation: dict[str, Any], events: list[dict[str, Any]]) -> float:
    func = aggregation.get("func", "count")
    if func == "count":
        return float(len(events))
    values = [_property(e, aggregation["property"]) for e in events]
    if func == "unique":
        return float(len({str(v) for v in values if v is not None}))
    numbers = []
    for v in values:
        try:
            if v is not None and not isinstance(v, bool):
                numbers.append(float(v))
        except (TypeError, ValueError):
            continue
    if not numbers:
        return 0.0
    if func == "sum":
        return float(sum(numbers))
    if func == "max":
        return max(numbers)
    if func == "min":
        return min(numbers)
    return sum(numbers) / len(numbers)  # avg
