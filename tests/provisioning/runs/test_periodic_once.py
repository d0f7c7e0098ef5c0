"""Periodic work once per period across workers, and retries that outlive a dead RQ scheduler."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

import worker
from provisioning.db import utcnow
from provisioning.integrations.models import PolarIntegration
from provisioning.runs.jobs import provision
from provisioning.runs.models import RunStatus
from provisioning.runs.periodic import enqueue_due_retries, once_per
from provisioning.runs.queue import QUEUE_NAME, connect, get_queue


def _together(fn, n: int = 3) -> list:
    barrier = threading.Barrier(n)
    results: list = []

    def call() -> None:
        barrier.wait()
        results.append(fn())

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_once_per_period_across_callers(redis_url) -> None:
    assert sorted(_together(lambda: once_per(redis_url, "test-task", timedelta(seconds=30)))) == [
        False,
        False,
        True,
    ]
    assert once_per(redis_url, "test-task", timedelta(seconds=30)) is False
    assert once_per(redis_url, "another-task", timedelta(seconds=30)) is True
    assert once_per("redis://127.0.0.1:1/0", "test-task", timedelta(seconds=30)) is False  # Redis down


def test_three_workers_sweeping_at_once_check_a_connection_once(
    committing_database, settings, redis_url, control
) -> None:
    from tests.committed import connect_committed

    connected = connect_committed(committing_database, settings, name="Swept Workspace")
    assert provision(connected.run_id, settings)["status"] == RunStatus.SUCCEEDED
    with committing_database.transaction() as session:  # long unchanged: due for a health check
        session.execute(
            sa.update(PolarIntegration)
            .where(PolarIntegration.id == connected.integration_id)
            .values(updated_at=utcnow() - timedelta(hours=7))
        )
    control.delete("/_emulator/requests")

    _together(lambda: worker.sweep(committing_database, settings))

    introspections = [
        r for r in control.get("/_emulator/requests").json() if r["path"] == "/v1/oauth2/introspect"
    ]
    assert len(introspections) == 1


def test_retries_due_while_no_scheduler_lives_are_enqueued(redis_url) -> None:
    connection = connect(redis_url)
    queue = get_queue(connection)
    job = queue.enqueue_at(
        datetime.now(UTC) - timedelta(seconds=1), "provisioning.runs.jobs.provision", "run-that-waited"
    )
    assert job.get_status() == JobStatus.SCHEDULED

    assert enqueue_due_retries(redis_url) == 1

    assert (
        Job.fetch(job.id, connection=connection, serializer=JSONSerializer).get_status() == JobStatus.QUEUED
    )
    assert job.id in queue.job_ids
    registry = ScheduledJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    assert registry.count == 0


def test_a_live_scheduler_is_left_to_do_its_work(redis_url) -> None:
    connection = connect(redis_url)
    queue = get_queue(connection)
    queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "provisioning.runs.jobs.provision", "x")
    alive = RQScheduler([QUEUE_NAME], connection=connection, serializer=JSONSerializer)
    assert alive.acquire_locks()
    try:
        assert enqueue_due_retries(redis_url) == 0
        assert ScheduledJobRegistry(QUEUE_NAME, connection=connection, serializer=JSONSerializer).count == 1
    finally:
        alive.release_locks()
