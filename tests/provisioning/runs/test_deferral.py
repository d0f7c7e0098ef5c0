"""A run that meets a used-up rate budget (ours, or Polar's 429 with a long Retry-After) is handed
back until the budget frees up, not failed and not retried on RQ's schedule: it costs no retry, the
sweeper enqueues it no earlier than then, and it finishes as if nothing happened."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from rq.registry import ScheduledJobRegistry

from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus
from provisioning.ratelimit import lanes
from provisioning.ratelimit.budget import BudgetExhausted, RateBudget
from provisioning.ratelimit.registry import budget_key
from provisioning.runs import repository
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun, RunStatus
from provisioning.runs.queue import QUEUE_NAME
from tests.provisioning.conftest import polar_requests


def _budget(settings) -> RateBudget:
    """Another process's handle on the budget the run draws on."""
    endpoints = settings.polar()
    return RateBudget(settings.redis_url, budget_key(endpoints), endpoints.rate_limit)


def test_a_run_meeting_a_used_up_budget_is_deferred_then_finishes(session, settings, connect, control):
    connected = connect()
    run_id = connected.run.id
    _budget(settings).pause(20)  # e.g. another worker just met a 429
    control.delete("/_emulator/requests")

    assert provision(run_id, settings)["status"] == "deferred"

    assert polar_requests(control) == []  # nothing reached Polar
    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run is not None
    assert run.status == RunStatus.QUEUED and run.attempts == 0 and run.enqueued_at is None
    assert run.not_before is not None
    assert timedelta(seconds=15) < run.not_before - utcnow() <= timedelta(seconds=20)
    assert "rate limit" in (run.error or "")
    assert connected.integration.status == IntegrationStatus.PROVISIONING  # "Setting up", not failed

    # RQ's scheduler holds a job for it at that time; the sweeper would enqueue it only later.
    scheduled = ScheduledJobRegistry(QUEUE_NAME, connection=redis.Redis.from_url(settings.redis_url))
    [job_id] = scheduled.get_job_ids()
    assert job_id.startswith(f"provision-{run_id}-at-")
    assert abs(scheduled.get_scheduled_time(job_id) - run.not_before) < timedelta(seconds=1)
    far = utcnow() + timedelta(hours=1)
    assert run_id not in repository.queued_never_enqueued(session, far, now=utcnow())
    assert run_id in repository.queued_never_enqueued(session, far, now=run.not_before)
    session.rollback()

    redis.Redis.from_url(settings.redis_url).flushall()  # the minute passed
    result = provision(run_id, settings)
    assert result["status"] == "succeeded", result
    session.expire_all()
    run = session.get(ProvisioningRun, run_id)
    assert run is not None and run.attempts == 1 and run.error is None


def test_polar_s_429_with_a_long_retry_after_defers_the_run_for_it(session, settings, connect, control):
    connected = connect()
    control.post(
        "/_emulator/faults",
        json={"path": "/v1/products/", "method": "GET", "status": 429, "retry_after": 60, "count": 1},
    ).raise_for_status()

    assert provision(connected.run.id, settings)["status"] == "deferred"

    session.expire_all()
    run = session.get(ProvisioningRun, connected.run.id)
    assert run is not None and run.status == RunStatus.QUEUED and run.not_before is not None
    assert timedelta(seconds=55) < run.not_before - utcnow() <= timedelta(seconds=60)
    # Every process now waits for Polar's minute, not just this run.
    with pytest.raises(BudgetExhausted) as refused:
        _budget(settings).acquire(lanes.Caller())
    assert 55 < refused.value.retry_after <= 60
