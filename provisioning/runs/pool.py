"""The worker's pool of warm job processes (RQ's ``WorkerPool`` of ``SimpleWorker``\\ s).

Why this model, and not RQ's default of a fresh fork per job or one process doing everything:

- **A fork per job** (RQ's ``Worker``) isolates each job but makes every run start cold: the
  work-horse is thrown away after one job, so the loaders polar-sdk builds on first use, SQLAlchemy's
  compiled statements, and the connections to the database and to Polar were all paid again on the
  next run. Measured through the whole path (``bench/connect_latency.py``), that was most of what an
  owner waited for once the callback returned.
- **No fork at all** (``python worker.py --simple``) keeps all of that, but a job that takes the
  process down (a SIGKILL, the OOM killer, a segfault in a C extension) takes the sweeper and the
  scheduler with it, and nothing runs until the platform restarts the process.
- **A pool of warm processes** (this): the main process warms up (``runs.warmup.warm``: imports,
  mappers, catalog, polar-sdk's models; its database pool disposed), then only supervises, sweeps
  and schedules retries. It forks ``--processes`` job processes (2 by default); each warms its own
  connections (``runs.warmup.warm_process``) and runs jobs one after another in itself, so its
  polar-sdk client (HTTP keep-alive to Polar), database connections and compiled statements serve
  every run after the first. A job process that dies is replaced within about a second, forked warm
  from the main process; the job it was running is marked dead in RQ at once, and its run's lease
  lapses and the sweeper resumes it on a live job process, as for a killed work-horse before. A
  warm shutdown (SIGTERM to the main process) asks every job process to finish its job and stop.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any

from redis import ConnectionPool
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.scheduler import run as run_scheduler
from rq.worker_pool import WorkerData, WorkerPool

from provisioning.observability import multiproc

log = logging.getLogger(__name__)


class WarmPool(WorkerPool):
    """RQ's ``WorkerPool``, with:

    - ``prepare``: run in each job process before it takes its first job (its warm-up);
    - ``on_started``: run in the main process once the first job processes are forked (the
      sweeper's thread starts there, so none of its threads runs while they are forked);
    - RQ's scheduler (retries whose time has come) run by the main process, not by a job process
      whose death would orphan it, and restarted if it dies;
    - a dead job process's metrics released and its RQ worker and job execution marked dead.
    """

    def __init__(
        self,
        *args: Any,
        prepare: Callable[[], None] | None = None,
        on_started: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._prepare = prepare
        self._on_started = on_started
        self._scheduler: RQScheduler | None = None

    def get_worker_process(
        self, name: str, burst: bool, _sleep: float = 0, logging_level: str = "INFO"
    ) -> BaseProcess:
        return get_context("fork").Process(
            target=_job_process,
            args=(self._prepare, name, self._queue_names, self._connection_class, self._pool_class),
            kwargs={
                "pool_kwargs": self._pool_kwargs,
                "burst": burst,
                "logging_level": logging_level,
                "worker_class": self.worker_class,
                "job_class": self.job_class,
                "queue_class": self.queue_class,
                "serializer": self.serializer,
                "exception_handlers": self.exception_handlers,
            },
            name=f"Worker {name} (WorkerPool {self.name})",
        )

    def start_workers(self, burst: bool = True, _sleep: float = 0, logging_level: str = "INFO") -> None:
        super().start_workers(burst=burst, _sleep=_sleep, logging_level=logging_level)
        if not burst:
            self._scheduler = _Scheduler(
                self._queue_names, connection=self.connection, serializer=self.serializer
            )
            self._keep_scheduler()
        if self._on_started is not None:
            on_started, self._on_started = self._on_started, None
            on_started()

    def check_workers(self, respawn: bool = True) -> None:
        super().check_workers(respawn=respawn)
        if respawn and self.status != self.Status.STOPPED:
            self._keep_scheduler()

    def _keep_scheduler(self) -> None:
        """Start RQ's scheduler if this pool holds (or takes) the queue's scheduler lock and its
        process is not running; another worker's live scheduler keeps the lock meanwhile."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        process = scheduler._process
        if process is not None and process.is_alive():
            return
        try:
            scheduler.acquire_locks(auto_start=True)
        except Exception:  # Redis away: the next check tries again
            log.warning("could not start RQ's scheduler; will try again", exc_info=True)

    def request_stop(self, signum: Any = None, frame: Any = None) -> None:
        super().request_stop(signum, frame)
        scheduler = self._scheduler
        if scheduler is not None and scheduler._process is not None and scheduler._process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                scheduler._process.terminate()  # SIGTERM: it releases its lock and stops

    def handle_dead_worker(self, worker_data: WorkerData) -> None:
        code = worker_data.process.exitcode
        if code != 0:
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            log.warning("job process %d died (%s); starting another", worker_data.pid, how)
            try:
                self._bury(worker_data.name)
            except Exception:  # Redis away: RQ's own maintenance cleans up later
                log.warning("could not mark job process %d dead in RQ", worker_data.pid, exc_info=True)
        multiproc.mark_process_dead(worker_data.pid)
        super().handle_dead_worker(worker_data)

    def _bury(self, name: str) -> None:
        """RQ's records of a job process that died without saying so: the job it was running no
        longer looks alive (so the sweeper may replace it at once) and the worker is dead."""
        worker = self.worker_class.find_by_key(
            self.worker_class.redis_worker_namespace_prefix + name,
            connection=self.connection,
            serializer=self.serializer,
        )
        if worker is None:
            return
        for execution in worker.get_current_executions(refresh=True):
            for queue_name in self._queue_names:
                registry = StartedJobRegistry(
                    queue_name, connection=self.connection, serializer=self.serializer
                )
                registry.remove_execution(execution)
            log.warning(
                "job %s was running in the dead job process; its run resumes once its lease lapses",
                execution.job_id,
            )
        worker.register_death()


class _Scheduler(RQScheduler):
    """RQ's scheduler, in a process that stops with the pool's main process."""

    def start(self) -> BaseProcess:
        self._status = self.Status.STARTED
        self._connection = None  # not carried across the fork (RQScheduler.start does the same)
        process = get_context("fork").Process(target=_scheduler_process, args=(self,), name="Scheduler")
        self._process = process  # type: ignore[assignment]
        process.start()
        return process


def _scheduler_process(scheduler: RQScheduler) -> None:
    _stop_with_parent()
    run_scheduler(scheduler)


def _job_process(
    prepare: Callable[[], None] | None,
    name: str,
    queue_names: list[str],
    connection_class: Any,
    pool_class: Any,
    *,
    pool_kwargs: dict[str, Any],
    burst: bool,
    logging_level: str,
    worker_class: Any,
    job_class: Any,
    queue_class: Any,
    serializer: Any,
    exception_handlers: Any,
) -> None:
    """A job process: stop with the main process, warm up, then RQ's worker loop (no scheduler:
    the main process runs it)."""
    _stop_with_parent()
    if prepare is not None:
        prepare()
    connection = connection_class(connection_pool=ConnectionPool(connection_class=pool_class, **pool_kwargs))
    queues = [queue_class(q, connection=connection, serializer=serializer) for q in queue_names]
    worker = worker_class(
        queues,
        name=name,
        connection=connection,
        serializer=serializer,
        job_class=job_class,
        queue_class=queue_class,
        exception_handlers=exception_handlers,
    )
    worker.work(burst=burst, with_scheduler=False, logging_level=logging_level)


def _stop_with_parent() -> None:
    """Linux: ask for SIGTERM (a warm stop) should the main process die without stopping us, so a
    killed main process never leaves job processes working beside its restarted successor."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
