"""What a ``/metrics`` scrape shows: the platform's metrics (merged across processes in
prometheus-client's multiprocess mode, this process's own otherwise) and the queue, read at scrape
time (its depth in Redis, the oldest queued run in the database)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from provisioning.observability import multiproc
from provisioning.runs.queue import get_queue

SCRAPE_TIMEOUT = 1.0  # seconds for Redis: a scrape must answer even when Redis does not


class ProcessesCollector(Collector):
    """Every process's values: the files of all roles in multiprocess mode, else this process's."""

    def collect(self) -> Iterable[Metric]:
        if multiproc.active():
            return MultiProcessCollector.merge(multiproc.files(), accumulate=True)
        return REGISTRY.collect()


class QueueCollector(Collector):
    def __init__(self, redis_url: str, oldest_queued: Callable[[], datetime | None]) -> None:
        self.redis_url = redis_url
        self.oldest_queued = oldest_queued

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily("connect_polar_queue_depth", "Provisioning jobs waiting on the queue")
        oldest = GaugeMetricFamily(
            "connect_polar_oldest_queued_run_age_seconds",
            "Age of the oldest provisioning run waiting to run (0 when none)",
        )
        up = GaugeMetricFamily(
            "connect_polar_queue_readable", "1 when the queue (Redis) could be read for this scrape"
        )
        try:
            conn = redis.Redis.from_url(
                self.redis_url, socket_connect_timeout=SCRAPE_TIMEOUT, socket_timeout=SCRAPE_TIMEOUT
            )
            try:
                depth.add_metric([], get_queue(conn).count)
            finally:
                conn.close()
            up.add_metric([], 1)
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
        since = self.oldest_queued()
        oldest.add_metric([], (datetime.now(UTC) - since).total_seconds() if since else 0.0)
        return [depth, oldest, up]


def scrape(redis_url: str, oldest_queued: Callable[[], datetime | None]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessesCollector())
    registry.register(QueueCollector(redis_url, oldest_queued))
    return generate_latest(registry)
