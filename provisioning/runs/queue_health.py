"""What the support console shows of the queue: depth, RQ's registries, live workers and failed
jobs with their error (never their arguments), and requeueing a failed job."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rq import Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer

from provisioning.runs.queue import QUEUE_NAME, connect, get_queue


@dataclass(frozen=True)
class FailedJob:
    id: str
    description: str
    ended_at: datetime | None
    error: str  # the exception's last line, never the job's arguments


@dataclass(frozen=True)
class WorkerState:
    name: str
    state: str
    current_job_id: str | None
    last_heartbeat: datetime | None


@dataclass
class QueueHealth:
    queued: int = 0
    started: int = 0
    failed: int = 0
    deferred: int = 0
    scheduled: int = 0
    workers: list[WorkerState] = field(default_factory=list)
    failed_jobs: list[FailedJob] = field(default_factory=list)
    error: str | None = None  # Redis could not be read


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no error recorded"


def _error_of(job: Job) -> str:
    result = job.latest_result()
    if result is not None and getattr(result, "exc_string", None):
        return _last_line(result.exc_string)
    return _last_line(getattr(job, "exc_info", None))


def queue_health(redis_url: str, *, failed_limit: int = 50) -> QueueHealth:
    try:
        connection = connect(redis_url)
        queue = get_queue(connection)
        failed = FailedJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
        health = QueueHealth(
            queued=queue.count,
            started=StartedJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer).count,
            failed=failed.count,
            deferred=DeferredJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer).count,
            scheduled=ScheduledJobRegistry(
                QUEUE_NAME, connection=connection, serializer=JSONSerializer
            ).count,
        )
        for worker in Worker.all(queue=queue):
            health.workers.append(
                WorkerState(
                    worker.name, str(worker.get_state()), worker.get_current_job_id(), worker.last_heartbeat
                )
            )
        ids = failed.get_job_ids(0, failed_limit - 1)
        for job in Job.fetch_many(ids, connection=connection, serializer=JSONSerializer):
            if job is None:
                continue
            health.failed_jobs.append(
                FailedJob(job.id, job.description or job.id, job.ended_at, _error_of(job))
            )
        return health
    except Exception as exc:  # the console must show the page even when Redis is down
        return QueueHealth(error=f"the queue could not be read ({type(exc).__name__})")


def requeue_failed_job(redis_url: str, job_id: str) -> bool:
    """Put a failed job back on its queue; False if it is not (or no longer) a failed job."""
    connection = connect(redis_url)
    registry = FailedJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    try:
        registry.requeue(job_id)
    except (NoSuchJobError, InvalidJobOperation):
        return False
    return True
