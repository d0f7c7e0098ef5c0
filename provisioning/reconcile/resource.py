"""The mechanism every reconcile step shares: list, find what exists, compare, write, re-list.

A step names its :class:`Resource` (SDK calls, scopes, how it reads in messages) and plans its own
changes; listing, the writes and the rounds after an ambiguous write live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from provisioning.catalog.desired import WORKSPACE_KEY, comparable_metadata
from provisioning.reconcile.context import MAX_ROUNDS, Change, RunContext, gave_up, still_ambiguous

S = TypeVar("S")

# The word a write leaves in a step's polar_ids.
DONE = {"create": "created", "update": "updated", "archive": "archived", "attach_benefits": "benefits_set"}


@dataclass(frozen=True)
class Resource:
    """One kind of Polar object a step ensures."""

    kind: str  # Change.kind and the polar_ids kind
    plural: str  # as in "list meters"
    sdk_group: str  # the polar-sdk namespace: api.sdk.<sdk_group>
    scope_read: str
    scope_write: str
    list_method: str = "list"
    create_method: str = "create"
    update_method: str = "update"
    by_workspace: bool = True  # list only objects tagged with this workspace's metadata
    keyed: bool = True  # one object per catalog id (otherwise the step keeps a single one)

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ")

    def the(self, key: str | None = None) -> str:
        """How a write names its object in messages."""
        return f"the {self.label} '{key}'" if self.keyed else f"the {self.label}"

    def create_change(self, key: str, name: str | None = None, body: dict[str, Any] | None = None) -> Change:
        summary = f"create {self.label} '{key}' ({name})" if self.keyed else f"create {self.label} {key}"
        return Change("create", self.kind, key, summary, body=body or {})

    def update_change(self, key: str, polar_id: str, update: dict[str, Any], fields: str) -> Change:
        target = f"'{key}'" if self.keyed else polar_id
        return Change("update", self.kind, key, f"update {self.label} {target}: {fields}", polar_id, update)

    def _sdk(self, ctx: RunContext, method: str) -> Any:
        return getattr(getattr(ctx.api.sdk, self.sdk_group), method)

    def fetch(self, ctx: RunContext) -> list[Any]:
        filters: dict[str, Any] = {"metadata": {WORKSPACE_KEY: ctx.workspace_id}} if self.by_workspace else {}
        return ctx.api.list_all(
            self._sdk(ctx, self.list_method),
            action=f"list {self.plural}",
            scope=self.scope_read,
            organization_id=ctx.organization_id,
            **filters,
        )

    def writer(self, ctx: RunContext, change: Change) -> Callable[[], Any]:
        """The call that makes one planned change: a create, or an update of the object's fields."""
        api = ctx.api
        if change.action == "create":
            return lambda: api.create(
                self._sdk(ctx, self.create_method),
                action=f"create {self.the(change.key)}",
                scope=self.scope_write,
                **change.body,
            )
        return lambda: api.write(
            self._sdk(ctx, self.update_method),
            change.polar_id,
            action=f"{change.action} {self.the(change.key)}",
            scope=self.scope_write,
            **change.body,
        )


def tag(obj: Any, key: str) -> Any:
    """The value of one connect_polar metadata key on a listed object."""
    return (obj.metadata or {}).get(key)


def metadata_differs(current: Any, body: dict[str, Any]) -> bool:
    return comparable_metadata(current.metadata) != comparable_metadata(body["metadata"])


def fields_with_metadata(update: dict[str, Any], metadata: dict[str, Any]) -> str:
    """Always send the metadata (it carries the revision); name it only when nothing else changed."""
    fields = ", ".join(sorted(k for k in update if k != "metadata") or ["metadata"])
    update.setdefault("metadata", metadata)
    return fields


@dataclass
class Rounds(Generic[S]):
    state: S  # what the last plan found
    written: list[tuple[Change, Any]]  # every successful write, with the object Polar returned
    last: list[tuple[Change, Any]]  # the successful writes of the last round


def converge(
    ctx: RunContext,
    resource: Resource,
    actual: list[Any] | None,
    plan: Callable[[list[Any]], tuple[S, list[Change]]],
    *,
    fetch: Callable[[RunContext], list[Any]] | None = None,
    writer: Callable[[RunContext, Change], Callable[[], Any]] | None = None,
) -> Rounds[S]:
    """Plan and write until nothing was ambiguous, re-listing after a write whose outcome is unknown."""
    fetch = fetch or resource.fetch
    writer = writer or resource.writer
    actual = fetch(ctx) if actual is None else actual
    written: list[tuple[Change, Any]] = []
    for _ in range(MAX_ROUNDS):
        state, changes = plan(actual)
        if not changes:
            return Rounds(state, written, [])
        results = ctx.parallel([writer(ctx, c) for c in changes])
        done = [(c, r) for c, r in zip(changes, results, strict=True) if not isinstance(r, BaseException)]
        written += done
        if not still_ambiguous(results):
            return Rounds(state, written, done)
        actual = fetch(ctx)
    raise gave_up(resource.plural if resource.keyed else resource.the())


@dataclass
class Ensured:
    """A keyed step's outcome."""

    ids: dict[str, str]  # catalog id -> Polar id
    changes: list[Change]
    polar_ids: list[dict[str, str]]


def ensure_keyed(
    ctx: RunContext,
    resource: Resource,
    actual: list[Any] | None,
    plan: Callable[[list[Any]], tuple[dict[str, str], list[Change]]],
    *,
    fetch: Callable[[RunContext], list[Any]] | None = None,
    writer: Callable[[RunContext, Change], Callable[[], Any]] | None = None,
) -> Ensured:
    """Converge, then report each catalog id's Polar id and every object written or found."""
    rounds = converge(ctx, resource, actual, plan, fetch=fetch, writer=writer)
    ids = rounds.state
    for change, result in rounds.last:
        if change.action == "create":
            ids[change.key] = result.id
    polar_ids = [{"kind": resource.kind, "id": r.id, "action": DONE[c.action]} for c, r in rounds.written]
    touched = {p["id"] for p in polar_ids}
    polar_ids += [
        {"kind": resource.kind, "id": i, "action": "found"} for i in ids.values() if i not in touched
    ]
    return Ensured(ids=ids, changes=[c for c, _ in rounds.written], polar_ids=polar_ids)
