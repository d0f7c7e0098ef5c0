"""RQ: enqueue after commit only, a real SimpleWorker on real Redis, and the outbox sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from provisioning.runs.models import ProvisioningRun
from provisioning.runs.periodic import enqueue_pending
from provisioning.runs.queue import connect, enqueue_after_commit, get_queue, job_id
from provisioning.runs.service import cancel_active_runs, create_run
from tests.committed import environ_of

BAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def worker_env(monkeypatch, settings):
    """The worker builds Settings.from_env(), as in production."""
    for key, value in environ_of(settings).items():
        monkeypatch.setenv(key, value)


def test_rollback_enqueues_nothing(session, connect, redis_url, redis_conn):
    connected = connect()
    cancel_active_runs(session, connected.integration.id, "replaced by the test's run")
    run = create_run(session, connected.integration, trigger="admin")
    enqueue_after_commit(session, run.id, redis_url)
    session.rollback()
    session.commit()  # a later commit must not enqueue the rolled-back run either
    assert not redis_conn.exists(Job.key_for(job_id(run.id)))
    assert len(get_queue(connect_redis(redis_url))) == 0


def connect_redis(url):
    return connect(url)


def test_enqueued_after_commit_and_run_by_a_worker(session, connect, redis_url, worker_env):
    connected = connect()
    run_id = connected.run.id
    enqueue_after_commit(session, run_id, redis_url)
    conn = connect_redis(redis_url)
    assert not conn.exists(Job.key_for(job_id(run_id)))  # not before the commit
    session.commit()

    queue = get_queue(conn)
    assert queue.job_ids == [job_id(run_id)]
    session.expire_all()
    assert session.get(ProvisioningRun, run_id).enqueued_at is not None

    SimpleWorker([queue], connection=conn, serializer=JSONSerializer).work(burst=True)

    job = Job.fetch(job_id(run_id), connection=conn, serializer=JSONSerializer)
    assert job.get_status() == "finished", job.exc_info
    assert job.return_value()["status"] == "succeeded"
    session.expire_all()
    assert session.get(ProvisioningRun, run_id).status == "succeeded"


def test_sweeper_enqueues_runs_whose_enqueue_failed(session, connect, redis_url):
    connected = connect()
    run_id = connected.run.id
    enqueue_after_commit(session, run_id, BAD_REDIS)
    session.commit()  # Redis is "down": the run stays in the outbox
    session.expire_all()
    assert session.get(ProvisioningRun, run_id).enqueued_at is None

    from provisioning.db import get_database

    assert enqueue_pending(get_database(), BAD_REDIS, min_age=timedelta(0)) == []
    assert enqueue_pending(get_database(), redis_url, min_age=timedelta(0)) == [run_id]
    assert get_queue(connect_redis(redis_url)).job_ids == [job_id(run_id)]
    session.expire_all()
    assert session.get(ProvisioningRun, run_id).enqueued_at is not None
    assert enqueue_pending(get_database(), redis_url, min_age=timedelta(0)) == []
