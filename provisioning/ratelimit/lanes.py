"""Who is waiting for a Polar call: a person (interactive) or nobody (background).

The lane travels in a context variable: a job sets ``background(tenant=workspace_id)`` around its
work, and everything else (web requests, CLI commands) is interactive by default. Polar clients
read it when they are built, so the threads a run fans its calls out to keep the run's lane.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class Lane(enum.StrEnum):
    INTERACTIVE = "interactive"  # the callback, owner and staff actions: always served first
    BACKGROUND = "background"  # runs, rollouts, health checks: never the reserved last share


@dataclass(frozen=True)
class Caller:
    lane: Lane = Lane.INTERACTIVE
    tenant: str = ""  # the workspace a background call is for: the budget is fair across them


INTERACTIVE = Caller()
_current: ContextVar[Caller] = ContextVar("connect_polar_caller", default=INTERACTIVE)


def current() -> Caller:
    return _current.get()


def adopt(caller: Caller) -> None:
    """Take ``caller`` as this thread's lane (a thread pool's initializer)."""
    _current.set(caller)


@contextmanager
def lane(caller: Caller) -> Iterator[Caller]:
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)


def background(tenant: str) -> Caller:
    return Caller(Lane.BACKGROUND, tenant)
