"""Atomic enqueue and the sweeper's reaper: real Redis, real RQ jobs, runs set up in PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from rq import Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import update

from provisioning.db import get_database, utcnow
from provisioning.runs.lease import LEGACY_REAP_AFTER, MAX_ATTEMPTS, RESUMING
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.periodic import enqueue_pending
from provisioning.runs.queue import connect, enqueue_run, get_queue, job_id, mark_enqueued
from tests.provisioning.runs.test_queue import worker_env  # noqa: F401  (fixture)


def _set(session, run_id: str, **values) -> None:
    session.execute(update(ProvisioningRun).where(ProvisioningRun.id == run_id).values(**values))
    session.commit()


def test_concurrent_enqueues_queue_one_job(connect, redis_url):
    run_id = connect().run.id
    barrier = threading.Barrier(8)
    jobs: list[Job] = []

    def enqueue() -> None:
        barrier.wait()
        jobs.append(enqueue_run(run_id, redis_url))

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(jobs) == 8 and {j.id for j in jobs} == {job_id(run_id)}
    assert get_queue(connect_redis(redis_url)).job_ids == [job_id(run_id)]


def connect_redis(url):
    return connect(url)


def test_a_finished_job_is_replaced_by_a_new_enqueue(session, connect, redis_url, worker_env):  # noqa: F811
    run_id = connect().run.id
    conn = connect_redis(redis_url)
    enqueue_run(run_id, redis_url)
    SimpleWorker([get_queue(conn)], connection=conn, serializer=JSONSerializer).work(burst=True)
    assert Job.fetch(job_id(run_id), connection=conn, serializer=JSONSerializer).get_status() == "finished"

    job = enqueue_run(run_id, redis_url)

    assert job.get_status() == JobStatus.QUEUED
    assert get_queue(conn).job_ids == [job_id(run_id)]


def _lapse(session, run_id: str, *, attempts: int = 1) -> None:
    """As a killed worker leaves its run: running, its lease lapsed a moment ago."""
    _set(
        session,
        run_id,
        status=RunStatus.RUNNING,
        attempts=attempts,
        started_at=utcnow() - timedelta(seconds=30),
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )


def test_a_run_whose_lease_lapsed_is_requeued_and_given_a_job(session, connect, redis_url):
    connected = connect()
    run_id = connected.run.id
    _lapse(session, run_id)
    # No job in Redis at all: the worker that ran it is gone.

    assert enqueue_pending(get_database(), redis_url) == [run_id]

    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run.status == RunStatus.QUEUED and run.error == RESUMING
    assert get_queue(connect_redis(redis_url)).job_ids == [job_id(run_id)]
    assert connected.integration.status == "provisioning"


def test_the_reaper_fails_a_run_abandoned_on_its_last_attempt(session, connect, redis_url):
    connected = connect()
    run_id = connected.run.id
    _lapse(session, run_id, attempts=MAX_ATTEMPTS)

    assert enqueue_pending(get_database(), redis_url) == []

    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run.status == RunStatus.FAILED and f"interrupted {MAX_ATTEMPTS} times" in run.error
    assert "Reconnect Polar" in run.error and run_id in run.error
    assert {s.status for s in run.steps} == {"skipped"}
    assert connected.integration.status == "failed" and connected.integration.last_error == run.error
    assert get_queue(connect_redis(redis_url)).job_ids == []


def test_a_run_under_a_live_lease_is_left_alone_whatever_its_job(session, connect, redis_url):
    run = connect().run
    _set(
        session,
        run.id,
        status=RunStatus.RUNNING,
        started_at=utcnow() - timedelta(hours=1),
        lease_expires_at=utcnow() + timedelta(seconds=10),
    )
    assert enqueue_pending(get_database(), redis_url) == []
    session.expire_all()
    assert session.get(ProvisioningRun, run.id).status == RunStatus.RUNNING


def test_a_lapsed_run_whose_job_still_looks_started_gets_a_new_job(session, connect, redis_url):
    """RQ keeps a SIGKILLed worker's job 'started' for a minute and a half; the lease says sooner."""
    run_id = connect().run.id
    job = enqueue_run(run_id, redis_url)
    conn = connect_redis(redis_url)
    get_queue(conn).remove(job)
    job.set_status(JobStatus.STARTED)
    _lapse(session, run_id)

    assert enqueue_pending(get_database(), redis_url) == [run_id]

    fresh = Job.fetch(job_id(run_id), connection=conn, serializer=JSONSerializer)
    assert fresh.get_status() == JobStatus.QUEUED
    assert get_queue(conn).job_ids == [job_id(run_id)]


def test_a_run_from_before_leases_counts_as_abandoned_long_after_it_started(session, connect, redis_url):
    run_id = connect().run.id
    _set(
        session,
        run_id,
        status=RunStatus.RUNNING,
        attempts=1,
        lease_expires_at=None,
        started_at=utcnow() - LEGACY_REAP_AFTER - timedelta(minutes=1),
    )
    assert enqueue_pending(get_database(), redis_url) == [run_id]


def test_a_queued_run_whose_job_was_lost_is_enqueued_again(session, connect, redis_url):
    run_id = connect().run.id
    mark_enqueued(get_database(), run_id)  # as after a retry: enqueued_at set, status queued
    _set(session, run_id, enqueued_at=utcnow() - timedelta(minutes=1))
    conn = connect_redis(redis_url)
    assert get_queue(conn).job_ids == []  # ...but the job is gone (Redis lost it, or it failed)

    assert enqueue_pending(get_database(), redis_url) == [run_id]
    assert get_queue(conn).job_ids == [job_id(run_id)]
    # Now its job is queued: the next sweep leaves it alone.
    _set(session, run_id, enqueued_at=utcnow() - timedelta(minutes=1))
    assert enqueue_pending(get_database(), redis_url) == []
    assert get_queue(conn).job_ids == [job_id(run_id)]


def test_an_unexpected_error_with_retries_left_requeues_the_run_instead_of_failing_it(
    session,
    connect,
    redis_url,
    worker_env,  # noqa: F811
    monkeypatch,
):
    """A bug in a step: RQ retries the job, so the run goes back to queued (not failed), and the
    ledger records the real error, not a PendingRollbackError from a failed flush."""
    from provisioning.config import Settings
    from provisioning.integrations.models import PolarProductMapping
    from provisioning.runs import execution, jobs, saga

    def broken_save(run_saga, record):
        # Two mappings for one plan: the flush raises IntegrityError, leaving the session unusable.
        for _ in range(2):
            run_saga.session.add(
                PolarProductMapping(
                    integration_id=run_saga.integration.id, plan_id="dup", polar_product_id="x"
                )
            )
        run_saga.session.flush()

    steps = tuple((name, broken_save if name == "save_mappings" else fn) for name, fn in saga.STEPS)
    monkeypatch.setattr(execution, "STEPS", steps)
    connected = connect()
    run_id = connected.run.id
    conn = connect_redis(redis_url)
    enqueue_run(run_id, redis_url, retry=Retry(max=1, interval=[600]))

    SimpleWorker([get_queue(conn)], connection=conn, serializer=JSONSerializer).work(burst=True)

    job = Job.fetch(job_id(run_id), connection=conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.SCHEDULED  # RQ will retry it
    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run.status == RunStatus.QUEUED, run.error
    assert "IntegrityError" in run.error and "(retrying)" in run.error
    assert "support has been notified" not in run.error
    step = {s.name: s for s in run.steps}["save_mappings"]
    assert step.status == "failed" and "IntegrityError" in step.error
    assert connected.integration.status == "provisioning"

    # The last attempt fails the run for good (and the job, with its traceback).
    monkeypatch.setattr(execution, "_retries_left", lambda: False)
    import pytest

    with pytest.raises(Exception, match="IntegrityError|UNIQUE|unique"):
        jobs.provision(run_id, Settings.from_env())
    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run.status == RunStatus.FAILED and "IntegrityError" in run.error
    assert connected.integration.status == "failed"
