"""Warming a worker before it works: what every run would otherwise pay on its first use.

A run's own work is a few database round trips and Polar's answers; left to itself, a fresh process
adds far more on its first run: polar-sdk builds the loader (adaptix) of each response model the
first time a response of that type is parsed (a product's alone takes hundreds of milliseconds),
SQLAlchemy configures its mappers, the job's modules are imported when RQ first resolves the job,
and the database, Redis and Polar get new connections.

Two steps, one per kind of cost:

- :func:`warm` runs once in the worker's main process, before it forks anything: it imports the
  job's modules, configures the mappers, loads the plan catalog, builds the loaders of every
  response (and error) model of the polar-sdk groups a run calls, and opens one database
  connection to check it; then it disposes of the engine's pool, so no socket is shared with a
  forked child. Everything it builds is plain memory that forked children inherit, already built.
- :func:`warm_process` runs in each process that will run jobs, before it takes its first one: it
  builds the process's polar-sdk client for each Polar environment served (its HTTP connection pool
  then lives as long as the process, ``polar.client.polar_sdk``) and opens its database connections.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
import typing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import configure_mappers

from provisioning.catalog import load_catalog
from provisioning.config import Settings
from provisioning.db import Database
from provisioning.polar.client import polar_sdk
from provisioning.runs.queue import JOB_FUNCTION

log = logging.getLogger(__name__)

# The polar-sdk groups a run calls (the account check, organizations, the four reconciled kinds),
# which the sweeper's health checks and switch clean-ups call too.
SDK_GROUPS = ("oauth2", "organizations", "meters", "benefits", "products", "webhooks")
# Modules the worker's entry point does not import itself: the job (RQ imports it by name on the
# first job) and the token refresh a run may need.
RUN_MODULES = (
    JOB_FUNCTION.rpartition(".")[0],
    "provisioning.integrations.tokens",
    "provisioning.polar.oauth",
)
# Database connections each job process opens before its first job: the job's session and the
# lease heartbeat's transaction are open together.
CONNECTIONS_PER_PROCESS = 2


@dataclass
class Warmed:
    """What :func:`warm` did, for the worker's start-up line."""

    seconds: float = 0.0
    models: int = 0
    skipped: list[str] = field(default_factory=list)  # models polar-sdk could not build a loader for

    def __str__(self) -> str:
        return f"{self.models} polar-sdk models in {self.seconds:.2f}s"


def warm(settings: Settings, database: Database) -> Warmed:
    """Build everything a run uses in this process, before it forks (see the module's docstring)."""
    began = time.monotonic()
    for name in RUN_MODULES:
        importlib.import_module(name)
    configure_mappers()
    load_catalog(settings.plans_file)
    warmed = Warmed()
    # This process's own client (the sweeper's health checks use it); its services name the models.
    sdk = polar_sdk(settings.default_polar.api_url)
    warmed.models, warmed.skipped = warm_sdk_models(sdk)
    engine = database.engine
    assert engine is not None
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()  # no pooled socket crosses a fork: each child opens its own
    warmed.seconds = time.monotonic() - began
    return warmed


def warm_process(settings: Settings, database: Database) -> None:
    """In a process about to run jobs: its polar-sdk clients and database connections, opened now."""
    for endpoints in settings.polar_environments.values():
        polar_sdk(endpoints.api_url)
    engine = database.engine
    assert engine is not None
    with ThreadPoolExecutor(CONNECTIONS_PER_PROCESS) as pool:  # held together, so the pool keeps both
        list(pool.map(lambda _: _touch(engine), range(CONNECTIONS_PER_PROCESS)))


def _touch(engine: Any) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        time.sleep(0.01)  # long enough for the other thread to need a second connection


def warm_sdk_models(sdk: Any, groups: tuple[str, ...] = SDK_GROUPS) -> tuple[int, list[str]]:
    """Build polar-sdk's loader of every model the methods of ``sdk``'s ``groups`` return or raise
    with.

    polar-sdk parses responses with one adaptix ``Retort`` (``polar.base._retort``) that builds a
    type's loader on first use and keeps it; building them here, once, leaves nothing to build in
    a run. A polar-sdk without that retort is only not warmed (logged), never an error."""
    import polar.base

    retort = getattr(polar.base, "_retort", None)
    if retort is None or not hasattr(retort, "get_loader"):
        log.warning("polar-sdk has no retort to warm; its models are built on first use")
        return 0, []
    built, skipped = 0, []
    for model in _sdk_models(sdk, groups):
        try:
            retort.get_loader(model)
        except Exception:  # a type adaptix cannot load ahead (never returned as is): left alone
            skipped.append(getattr(model, "__name__", repr(model)))
        else:
            built += 1
    return built, skipped


def _sdk_models(sdk: Any, groups: tuple[str, ...]) -> Iterator[Any]:
    """The response and error models of every public method of the SDK client's ``groups``."""
    import polar.base

    seen: set[Any] = set()
    for group in groups:
        service = type(getattr(sdk, group))
        module = inspect.getmodule(service)
        namespace = vars(module) if module is not None else {}
        for name, method in inspect.getmembers(service, inspect.isfunction):
            if name.startswith(("_", "iter_")):  # iter_* return generators over list()'s items
                continue
            try:
                returned = typing.get_type_hints(method, namespace).get("return")
            except Exception:
                continue
            candidates = [returned]
            # The errors a method parses are the module's error classes its code names.
            for referenced in method.__code__.co_names:
                error = namespace.get(referenced)
                if isinstance(error, type) and issubclass(error, polar.base.PolarClientError):
                    candidates.append(getattr(error, "error_type", None))
            for model in candidates:
                if model is None or model is type(None) or model is str or model in seen:
                    continue
                seen.add(model)
                yield model
