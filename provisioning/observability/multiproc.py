"""prometheus-client's multiprocess mode for gunicorn's workers and the worker's job processes.

prometheus-client keeps a process's values in memory unless ``PROMETHEUS_MULTIPROC_DIR`` is set, in
which case every process (forked children included) writes them to files there and a scrape merges
them. A long-running process that forks calls :func:`prepare` at start-up, before any metric is
recorded: it records under ``$PROMETHEUS_MULTIPROC_DIR/<role>`` (``web`` for gunicorn's master and
workers, ``worker`` for ``worker.py`` and its job processes; default base ``instance/metrics``), and
empties that directory first, as prometheus-client asks ("wiped between runs"): each role wipes only
its own, so a web restart never erases the worker's counters. A scrape (:func:`files`) merges every
role's files under the base, so the web's ``/metrics`` shows the worker's provisioning metrics too
when both run on one host. gunicorn's ``child_exit`` hook calls :func:`mark_process_dead`.

Nothing here imports prometheus-client at module level: the environment variable must be set before
its first import decides the mode (and :func:`prepare` re-decides it if it was imported already).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from provisioning.config import MetricsSettings

# Read as a setting (MetricsSettings) by :func:`prepare`, which then points it at the role's own
# directory: from there on it is prometheus-client's switch to files, read at run time.
ENV = MetricsSettings.variables()["prometheus_multiproc_dir"]
# Set by :func:`prepare` (and inherited by forked and spawned children): the base of every role's files.
PREPARED = "CONNECT_POLAR_METRICS_BASE"


def prepare(role: str, environ: MutableMapping[str, str] | None = None) -> Path:
    """Record this process's (and its children's) metrics under ``<base>/<role>``, emptied first.
    A no-op in a child of a prepared process (a gunicorn worker: the master prepared)."""
    env = os.environ if environ is None else environ
    if env.get(PREPARED):
        return Path(env[ENV])
    base = MetricsSettings.from_env(env).prometheus_multiproc_dir
    directory = base / role
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    env[PREPARED] = str(base)
    env[ENV] = str(directory)
    if environ is None:
        _refresh_value_class()
    return directory


def _refresh_value_class() -> None:
    """If prometheus-client was imported before the directory was set, switch it to files now:
    labelled metrics' values made from here on write there (call :func:`prepare` before importing
    the metrics all the same: an unlabelled metric's value is made with it)."""
    import sys

    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def active() -> bool:
    """Whether this process records to files (multiprocess mode) rather than in memory."""
    return bool(os.environ.get(ENV))


def files() -> list[str]:
    """Every value file a scrape merges: all roles' under a prepared base, else the directory's own."""
    base = os.environ.get(PREPARED)
    if base:
        return sorted(str(p) for p in Path(base).glob("*/*.db"))
    directory = os.environ.get(ENV)
    return sorted(str(p) for p in Path(directory).glob("*.db")) if directory else []


def mark_process_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: drop a dead worker's live gauges, as prometheus-client documents."""
    directory = os.environ.get(ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)
