"""The worker process's entry point: ``python worker.py [--burst]`` (Procfile ``worker``).

Like ``wsgi.py`` for the web, this is where the process is composed: it loads every table of the
shared metadata (the domain's and the web layer's account tables, which the domain's foreign keys
name), checks the settings and that the encryption keys decrypt the database's key canary
(stopping with one line naming the setting otherwise), configures the database, sweeps the outbox for runs whose enqueue was lost, and runs an RQ
worker with the JSON serializer on the queue of provisioning runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from datetime import timedelta

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

import app.accounts.models  # noqa: F401  (tables that provisioning's foreign keys refer to)
import provisioning.models  # noqa: F401
from provisioning import startup
from provisioning.catalog import load_catalog
from provisioning.config import ConfigError, Settings
from provisioning.connect import switch
from provisioning.connect.service import purge_expired_attempts
from provisioning.db import Database, configure
from provisioning.health import monitor
from provisioning.observability import logs, multiproc
from provisioning.runs import periodic, queue

log = logging.getLogger("connect_polar.worker")
PURGE_EVERY = timedelta(hours=1)


def sweep(database: Database, settings: Settings) -> None:
    """Every worker sweeps every SWEEP_EVERY_SECONDS; each task below runs once per its period
    across all workers (``periodic.once_per``), so three workers never check a connection thrice."""
    every = timedelta(seconds=settings.sweep_every_seconds)
    if periodic.once_per(settings.redis_url, "purge-attempts", PURGE_EVERY):
        try:
            with database.transaction() as session:
                purge_expired_attempts(session)
        except Exception:  # the sweeper must never take the worker down
            log.exception("purging expired connect attempts failed")
    if periodic.once_per(settings.redis_url, "switch-cleanups", every):
        try:
            with database.transaction() as session:
                switch.retry_cleanups(session, settings)
        except Exception:  # the sweeper must never take the worker down
            log.exception("retrying webhook endpoint deletions in previous organizations failed")
    if periodic.once_per(settings.redis_url, "health-checks", every):
        try:
            monitor.check_due(database, settings, load_catalog(settings.plans_file))
        except Exception:  # the sweeper must never take the worker down
            log.exception("connection health checks failed")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python worker.py", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="work until the queue is empty, then exit")
    parser.add_argument("--simple", action="store_true", help="run jobs in this process (no fork)")
    args = parser.parse_args(argv)
    # Metrics of this process and its work-horses: files under $PROMETHEUS_MULTIPROC_DIR/worker
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
    # RQ forks a work horse per job: the child must open its own connections, never reuse the
    # parent's pooled sockets (the parent's sweeper thread keeps using them).
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    sweep(database, settings)
    stop = threading.Event()
    if not args.burst:
        threading.Thread(target=_sweep_forever, args=(database, settings, stop), daemon=True).start()
    connection = queue.connect(settings.redis_url)
    worker_class = SimpleWorker if args.simple or sys.platform == "darwin" else Worker
    worker = worker_class(
        [queue.get_queue(connection, queue.QUEUE_NAME)], connection=connection, serializer=JSONSerializer
    )
    try:
        worker.work(burst=args.burst, with_scheduler=not args.burst)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
