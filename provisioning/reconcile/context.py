"""What every reconcile step needs: the tenant's Polar API, the catalog, ids, and a thread pool."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from provisioning.catalog import Catalog
from provisioning.polar.client import AmbiguousWriteError, PolarApi
from provisioning.polar.errors import TransientPolarError

T = TypeVar("T")
# Rounds of list → diff → write when a create's outcome was ambiguous (a 5xx after sending).
MAX_ROUNDS = 3


@dataclass
class RunContext:
    api: PolarApi
    catalog: Catalog
    workspace_id: str
    organization_id: str
    webhook_url: str
    executor: ThreadPoolExecutor
    dry_run: bool = False

    @property
    def revision(self) -> str:
        return self.catalog.revision

    def parallel(self, fns: list[Callable[[], T]]) -> list[T | BaseException]:
        """Run independent calls concurrently; return each result or the exception it raised."""
        if len(fns) <= 1:
            out: list[T | BaseException] = []
            for fn in fns:
                try:
                    out.append(fn())
                except Exception as exc:
                    out.append(exc)
            return out
        futures = [self.executor.submit(fn) for fn in fns]
        results: list[T | BaseException] = []
        for fut in futures:
            try:
                results.append(fut.result())
            except Exception as exc:
                results.append(exc)
        return results


@dataclass(frozen=True)
class Change:
    """One write provisioning would make (or made)."""

    action: str  # create | update | archive | attach_benefits
    kind: str  # meter | benefit | product | webhook_endpoint | organization
    key: str  # the catalog id (plan/benefit/meter) or the URL
    summary: str
    polar_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict, compare=False)


def raise_first(results: list[Any]) -> None:
    """Re-raise the first non-ambiguous failure; an ambiguous one only if nothing else failed."""
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors:
        if not isinstance(err, AmbiguousWriteError):
            raise err
    if errors:
        raise errors[0]


def still_ambiguous(results: list[Any]) -> bool:
    errors = [r for r in results if isinstance(r, BaseException)]
    if any(not isinstance(e, AmbiguousWriteError) for e in errors):
        raise_first(results)
    return bool(errors)


def gave_up(kind: str) -> TransientPolarError:
    return TransientPolarError(f"Polar kept failing while creating {kind}; the run will be retried")


def as_plain(obj: Any) -> Any:
    """SDK output dataclasses (and enums) as plain dicts/lists/str, for comparing with request bodies."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [as_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: as_plain(v) for k, v in obj.items()}
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj
