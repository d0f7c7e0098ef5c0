"""The worker process's entry point: ``python worker.py [--burst] [--processes N] [--simple]``
(Procfile ``worker``).

Like ``wsgi.py`` for the web, this is where the process is composed: it loads every table of the
shared metadata (the domain's and the web layer's account tables, which the domain's foreign keys
name), checks the settings and that the encryption keys decrypt the database's key canary
(stopping with one line naming the setting otherwise), configures the database, warms up
(``runs.warmup``), sweeps the outbox for runs whose enqueue was lost, and runs RQ (JSON serializer)
on the queue of provisioning runs in a pool of warm job processes (``runs.pool``, which says why),
``--processes`` of them (default 2); this process supervises them, sweeps and schedules retries.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import timedelta

from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

import app.accounts.models  # noqa: F401  (tables that provisioning's foreign keys refer to)
import provisioning.models  # noqa: F401
from provisioning import startup
from provisioning.background import BILLING_QUEUE
from provisioning.billing import tasks as billing_tasks
from provisioning.catalog import load_catalog
from provisioning.config import ConfigError, Settings
from provisioning.connect import switch
from provisioning.connect.service import purge_expired_attempts
from provisioning.db import Database, configure
from provisioning.drift import service as drift  # noqa: F401  (a run that succeeds resolves drift)
from provisioning.forwarding import tasks as forwarding
from provisioning.health import monitor
from provisioning.observability import logs, multiproc
from provisioning.runs import periodic, queue, warmup
from provisioning.runs.pool import WarmPool
from provisioning.usage import tasks as usage_tasks

log = logging.getLogger("connect_polar.worker")
PURGE_EVERY = timedelta(hours=1)
DEFAULT_PROCESSES = 2
# The billing queue first: its jobs are short and someone waits on them (an event, usage).
QUEUES = (BILLING_QUEUE, queue.QUEUE_NAME)


def _periodically(
    settings: Settings, name: str, period: timedelta, task: Callable[[], object], what: str
) -> None:
    """Run ``task`` if no worker ran ``name`` within ``period``; a failure is logged as ``what``
    failing, never raised (the sweeper must never take the worker down)."""
    if not periodic.once_per(settings.redis_url, name, period):
        return
    try:
        task()
    except Exception:
        log.exception("%s failed", what)


def _in_transaction(database: Database, work: Callable[[Session], object]) -> Callable[[], None]:
    def run() -> None:
        with database.transaction() as session:
            work(session)

    return run


def sweep(database: Database, settings: Settings) -> None:
    """Every worker sweeps every SWEEP_EVERY_SECONDS; each task below runs once per its period
    across all workers (``periodic.once_per``), so three workers never check a connection thrice."""
    every = timedelta(seconds=settings.sweep_every_seconds)
    _periodically(
        settings,
        "purge-attempts",
        PURGE_EVERY,
        _in_transaction(database, purge_expired_attempts),
        "purging expired connect attempts",
    )
    _periodically(
        settings,
        "switch-cleanups",
        every,
        _in_transaction(database, lambda session: switch.retry_cleanups(session, settings)),
        "retrying webhook endpoint deletions in previous organizations",
    )
    _periodically(
        settings,
        "health-checks",
        every,
        lambda: monitor.check_due(database, settings, load_catalog(settings.plans_file)),
        "connection health checks",
    )
    _periodically(
        settings,
        "event-forwarding",
        every,
        lambda: forwarding.nudge_due(database, settings),
        "nudging due event forwarding deliveries",
    )
    _periodically(
        settings,
        "billing-events",
        timedelta(seconds=1),
        lambda: billing_tasks.sweep(database, settings),
        "nudging connections with waiting webhook events",
    )
    _periodically(
        settings,
        "usage-ingest",
        every,
        lambda: usage_tasks.sweep(database, settings),
        "nudging connections with due usage events",
    )
    try:
        periodic.enqueue_due_retries(settings.redis_url)
    except Exception:  # the sweeper must never take the worker down
        log.exception("enqueueing due retries failed")
    try:
        enqueued = periodic.enqueue_pending(database, settings.redis_url)
    except Exception:  # the sweeper must never take the worker down
        log.exception("outbox sweep failed")
        return
    if enqueued:
        log.info("outbox: enqueued %d waiting run(s)", len(enqueued))


def _sweep_forever(database: Database, settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(settings.sweep_every_seconds):  # SWEEP_EVERY_SECONDS: resumes abandoned runs
        sweep(database, settings)


def _processes(raw: str) -> int:
    """``--processes``: a whole number, at least 1."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {raw!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python worker.py", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="work until the queue is empty, then exit")
    parser.add_argument(
        "--simple", action="store_true", help="run jobs in this one process (no pool, no fork)"
    )
    parser.add_argument(
        "--processes",
        type=_processes,
        default=DEFAULT_PROCESSES,
        help=f"job processes in the pool (default {DEFAULT_PROCESSES})",
    )
    args = parser.parse_args(argv)
    # Metrics of this process and its job processes: files under $PROMETHEUS_MULTIPROC_DIR/worker
    # (default instance/metrics/worker), emptied now; the web's /metrics merges them on one host.
    multiproc.prepare("worker")
    try:
        settings = Settings.from_env()
        logs.configure(settings.log_format)  # JSON in production, readable lines elsewhere
        startup.check_catalog(settings)
        database = configure(Database(url=settings.database_url))
        startup.check_keys(database, settings)  # the keys must be this database's: never work with others
    except ConfigError as exc:
        startup.stop(exc, 2)
    engine = database.engine
    assert engine is not None
    # Everything a run uses, built once here and inherited by every job process (runs.warmup).
    warmed = warmup.warm(settings, database)
    log.info("worker warmed up: %s", warmed)
    # A forked child (a job process, RQ's scheduler) opens its own connections, never reusing this
    # process's pooled sockets (its sweeper thread keeps using them).
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    sweep(database, settings)
    engine.dispose()  # before the job processes are forked: no socket of ours is shared with them
    stop = threading.Event()

    def start_sweeper() -> None:
        if not args.burst:
            threading.Thread(target=_sweep_forever, args=(database, settings, stop), daemon=True).start()

    connection = queue.connect(settings.redis_url)
    try:
        if args.simple or sys.platform == "darwin":  # macOS: no fork (its system libraries forbid it)
            warmup.warm_process(settings, database)
            start_sweeper()
            worker = SimpleWorker(
                [queue.get_queue(connection, name) for name in QUEUES],
                connection=connection,
                serializer=JSONSerializer,
            )
            worker.work(burst=args.burst, with_scheduler=not args.burst)
        else:
            pool = WarmPool(
                list(QUEUES),
                connection=connection,
                num_workers=args.processes,
                worker_class=SimpleWorker,
                serializer=JSONSerializer,
                prepare=lambda: warmup.warm_process(settings, database),
                on_started=start_sweeper,
            )
            pool.start(burst=args.burst)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
