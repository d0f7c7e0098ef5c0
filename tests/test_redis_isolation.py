"""The suite's Redis belongs to this test process alone, so two test runs on one machine cannot
empty or read each other's queues, locks and counters."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import redis

# Where a Redis shared by the machine usually answers (the one `.ci/run` and `make run` start).
SHARED_REDIS = "redis://127.0.0.1:6379"


def _parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after the last ")".
    return int(stat.rpartition(")")[2].split()[1])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_redis_server_was_started_by_this_test_process(redis_conn: redis.Redis) -> None:
    server_pid = int(redis_conn.info("server")["process_id"])
    assert server_pid != os.getpid()
    assert _parent_pid(server_pid) == os.getpid()


def test_a_key_written_here_is_in_no_database_of_the_shared_redis(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    shared = redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=1)
    try:
        shared.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis answers at {SHARED_REDIS} to compare with")
    key = f"isolation-probe:{uuid.uuid4()}"
    redis_conn.set(key, "this run")
    try:
        databases = int(shared.config_get("databases")["databases"])
        seen = []
        for n in range(databases):
            with redis.Redis.from_url(f"{SHARED_REDIS}/{n}") as database:
                if database.exists(key):
                    seen.append(n)
        assert seen == [], f"{redis_url} is database(s) {seen} of the machine's shared Redis"
    finally:
        redis_conn.delete(key)
        shared.close()


def test_the_server_listens_only_on_its_own_socket_and_keeps_nothing(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    """No TCP port another run could connect to by accident, and nothing left on disk after."""
    assert redis_url.startswith("unix://")
    socket_path = Path(redis_url.removeprefix("unix://"))
    assert socket_path.is_socket()
    assert redis_conn.config_get("unixsocket")["unixsocket"] == str(socket_path)
    assert redis_conn.config_get("port")["port"] == "0"
    assert redis_conn.config_get("save")["save"] == ""
    assert redis_conn.config_get("appendonly")["appendonly"] == "no"
