"""Polar's signed webhook deliveries: what observability costs, how fast gunicorn takes them in, and
how soon they are in the billing state.

Run: ``.venv/bin/python bench/webhook_ingest.py [--part observability|lag|ingest|all]`` (default
all, in that order; about a minute and a half on a 2-core machine; ``--help`` lists each part's
sizes).

Every delivery is signed as Polar signs it (Standard Webhooks; the HMAC key is the whole ``whsec_…``
secret's bytes) with a fresh ``webhook-id``. The last line is ``key=value`` pairs: the figures of
the parts that ran.

**observability** (``on_rps=``, ``off_rps=``, ``ratio=`` on / off). The web app (``create_app``,
through Flask's test client: no network in the measure) verifies and records each delivery in a
SQLite database in a temporary folder, and after each commit nudges the processing job into a
private ``redis-server`` (else ``REDIS_URL``'s; ``redis=`` says which, ``none`` when neither
answers: the nudge then logs a warning, as in production). No worker takes the jobs. Rounds
alternate between *observability on* (JSON log lines through the platform's structlog handler into a
file, and prometheus-client's metrics in multiprocess mode, files in a temporary directory) and
*off* (no log handler, the metrics replaced by no-ops), so both see the same database growth and
machine noise; the figures are medians. Deliveries: small, ``order.created``-shaped.

The other two parts run the platform as in production (``bench/stack.py``'s ``Stack``: the
Procfile's ``gunicorn -c gunicorn.conf.py wsgi:app`` and ``python worker.py``, a private
``redis-server``, the local Polar, a fresh PostgreSQL database). An owner signs up and connects
Polar over HTTP; the connection's webhook URL token and secret are read from the database (the
secret decrypted with the stack's keys). A simulated purchase at the local Polar (``POST
/_emulator/simulate/purchase``, the connection's ``pro-monthly`` product, else another of its
mappings) gives Polar's own payloads (``GET /_emulator/webhook-events``; the local Polar also
delivers them to the web): ``order.paid``, ``subscription.active`` (sent as
``subscription.updated``, the same object) and ``customer.state_changed``. Deliveries take them in
turn, for one of ``--customers`` customers each (ids, external ids, emails, subscription and grant
ids made up per customer), with a new order id for each ``order.paid`` and the time the body was
made as the event's ``timestamp`` and the object's ``modified_at``: every delivery changes the
state. Both parts print the CPU each process used per delivery (Linux's ``/proc``: gunicorn's and
the worker's processes, the PostgreSQL backends of the database, Redis, and this client).

**lag** (``lag_p95_ms=``, ``lag_p50_ms=``, ``lag_max_ms=``; goal p95 < 1000). With the worker
running, deliveries are sent open-loop at ``--lag-rate`` per second (100) for ``--lag-seconds`` (20)
to the web: each at its scheduled time, from a pool of threads, whatever the answers' pace (the
bodies made beforehand, each signed as it is sent; one unmeasured second first, processed before
the measure starts). Once none of them is pending, the lag of each event is its ``processed_at`` −
``received_at`` in the database, both stamped by the platform: ``received_at`` as the web records
the delivery (before its commit and the nudge), ``processed_at`` as the job starts the batch that
applies it (the batch's commit, when the state becomes visible, follows after its processing
time). Also ``sent=``, ``accepted=`` (answered 202), ``processed=`` (events with a
``processed_at``: processed, ignored or flagged), ``batches=`` (distinct ``processed_at``: the
transactions that applied them), ``late_ms=`` (the client's worst delay behind its schedule: large
means the client, short of CPU, sent in bursts), ``web_cpu_ms=`` and ``worker_cpu_ms=`` (CPU per
delivery).

**ingest** (``ingest_ratio=`` ours / bare, goal ≥ 0.5; ``ours_rps=``, ``bare_rps=``). Deliveries per
second through gunicorn to the platform's receiver (verify, record in PostgreSQL in one statement
that commits by itself, nudge the job in Redis, answer 202), against ``bench/bare_receiver.py`` (a Flask app that only verifies the
signature and answers 204) under the same gunicorn configuration (``gunicorn.conf.py``, its default
workers and threads, its JSON access log). The worker is stopped first: it is not part of the
receiver and would compete with it for the machine's cores (the nudges still go to Redis; the
recorded events wait). One unmeasured round of each first (300 deliveries); then rounds alternate
bare and ours, ``--ingest-rounds`` (3) of each, each sized by its receiver's first pace to last
about ``--ingest-seconds`` (4), sent by ``--concurrency`` (8) threads, each with its own keep-alive
httpx connection, the deliveries signed just before the round. Figures are medians;
``ours_web_cpu_ms=`` and ``bare_cpu_ms=`` are the receivers' CPU per delivery. The client shares the
machine: should it cap ``bare_rps=``, the ratio would look better than it is, never worse.
"""

from __future__ import annotations

import argparse
import base64
import copy
import itertools
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Metrics in multiprocess mode, decided before prometheus-client is imported.
from provisioning.observability import multiproc  # noqa: E402

WORKDIR = tempfile.mkdtemp(prefix="connect-polar-bench-webhooks-")
os.environ[multiproc.ENV] = os.path.join(WORKDIR, "metrics")
multiproc.prepare("bench")

import httpx  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import structlog  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402

from app import create_app  # noqa: E402
from bench.stack import (  # noqa: E402
    BIN,
    Proc,
    Stack,
    connect_workspace,
    cpu_used,
    free_port,
    start_redis,
    wait_until,
)
from provisioning import db as db_module  # noqa: E402
from provisioning.config import Settings  # noqa: E402
from provisioning.integrations.models import IntegrationStatus, PolarIntegration  # noqa: E402
from provisioning.integrations.service import decrypt_secret, encrypt_secret  # noqa: E402
from provisioning.observability import logs, metrics  # noqa: E402
from tests.factories import make_owner  # noqa: E402
from tests.migrations_util import upgrade_to_head  # noqa: E402

METRIC_NAMES = ("WEBHOOKS_RECEIVED", "WEBHOOKS_REJECTED", "WEBHOOKS_RECORDED")
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"  # bench/bare_receiver.py's


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signer_for(secret: str) -> Webhook:
    return Webhook(base64.b64encode(secret.encode()).decode())  # Polar's scheme: the whole secret's bytes


def signed_headers(signer: Webhook, body: bytes, webhook_id: str | None = None) -> dict[str, str]:
    msg_id = webhook_id or str(uuid.uuid4())
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }


# -- observability on vs off, in process -----------------------------------------------------------


class _NoMetric:
    def labels(self, *_: Any) -> _NoMetric:
        return self

    def inc(self, *_: Any) -> None:
        pass


REAL_METRICS = {name: getattr(metrics, name) for name in METRIC_NAMES}


def observability(on: bool, log_file: Any) -> None:
    root = logging.getLogger()
    if on:
        logs.configure("json", stream=log_file)
        for name, metric in REAL_METRICS.items():
            setattr(metrics, name, metric)
    else:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        structlog.reset_defaults()
        for name in METRIC_NAMES:
            setattr(metrics, name, _NoMetric())


def order_created(signer: Webhook, n: int) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "order.created",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"id": str(uuid.uuid4()), "amount": 1000 + n, "currency": "usd"},
    }
    body = json.dumps(payload).encode()
    return body, signed_headers(signer, body, f"msg_{uuid.uuid4().hex}")


def bench_redis(workdir: Path) -> tuple[str, Proc | None]:
    """A Redis for the receiver's nudges: a private one, else REDIS_URL's; else none answers."""
    try:
        return start_redis(workdir)
    except Exception as exc:  # no redis-server and REDIS_URL's does not answer
        print(f"no Redis ({type(exc).__name__}): the nudges log a warning", flush=True)
        return UNREACHABLE_REDIS, None


def part_observability(args: argparse.Namespace) -> dict[str, str]:
    workdir = Path(WORKDIR)
    redis_url, redis_proc = bench_redis(workdir)
    try:
        return _observability_rounds(args, redis_url)
    finally:
        if redis_proc is not None:
            redis_proc.stop()


def _observability_rounds(args: argparse.Namespace, redis_url: str) -> dict[str, str]:
    secret = new_secret()
    engine = db_module.make_engine(f"sqlite:///{os.path.join(WORKDIR, 'bench.db')}")
    upgrade_to_head(engine)
    database = db_module.configure(db_module.Database(engine))
    settings = Settings.model_validate(
        {
            "env": "test",
            "redis_url": redis_url,
            "token_encryption_keys": [Fernet.generate_key()],
            "public_base_url": "http://127.0.0.1:9",
        }
    )
    with database.transaction() as session:
        owner = make_owner(session, "Webhook Bench", email="owner@webhook-bench.test")
    with database.transaction() as session:
        integration = PolarIntegration(
            workspace_id=owner.workspace_id,
            status=IntegrationStatus.READY,
            webhook_endpoint_id=str(uuid.uuid4()),
        )
        session.add(integration)
        session.flush()
        integration.webhook_secret = encrypt_secret(settings, integration, "webhook_secret", secret)
        path = f"/polar/webhooks/{integration.webhook_path_token}"
    app = create_app(settings, database=database)
    client = app.test_client()
    signer = signer_for(secret)
    log_path = os.path.join(WORKDIR, "bench.log")

    rates: dict[bool, list[float]] = {True: [], False: []}
    with open(log_path, "w") as log_file:
        # A warm-up round of each, unmeasured (first requests compile templates, fill caches).
        for on in (True, False):
            observability(on, log_file)
            for n in range(20):
                body, headers = order_created(signer, n)
                assert client.post(path, data=body, headers=headers).status_code == 202
        for _ in range(args.rounds):
            for on in (False, True):
                observability(on, log_file)
                deliveries = [order_created(signer, n) for n in range(args.deliveries)]
                started = time.perf_counter()
                for body, headers in deliveries:
                    response = client.post(path, data=body, headers=headers)
                    assert response.status_code == 202, response.get_data(as_text=True)
                rates[on].append(args.deliveries / (time.perf_counter() - started))
        observability(False, log_file)
    engine.dispose()
    lines = Path(log_path).read_text().splitlines()
    assert lines and all(json.loads(line).get("request_id") for line in lines if "received for" in line)
    queued = 0
    if redis_url != UNREACHABLE_REDIS:
        connection = redis.Redis.from_url(redis_url)
        queued = int(connection.llen("rq:queue:billing"))
        connection.close()

    on_rps, off_rps = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"logging: JSON, {len(lines)} lines; metrics: multiprocess, {len(multiproc.files())} files")
    print(
        f"nudges: {'none (no Redis)' if redis_url == UNREACHABLE_REDIS else redis_url}, {queued} job(s) queued"
    )
    print("on  (deliveries/s):", ", ".join(f"{r:.0f}" for r in rates[True]))
    print("off (deliveries/s):", ", ".join(f"{r:.0f}" for r in rates[False]))
    print(f"observability: on {on_rps:.0f}/s, off {off_rps:.0f}/s, ratio {on_rps / off_rps:.2f}", flush=True)
    return {
        "on_rps": f"{on_rps:.0f}",
        "off_rps": f"{off_rps:.0f}",
        "ratio": f"{on_rps / off_rps:.2f}",
        "deliveries": str(args.deliveries),
        "redis": redis_kind(redis_url),
    }


def redis_kind(redis_url: str) -> str:
    if redis_url == UNREACHABLE_REDIS:
        return "none"
    return "private" if redis_url.startswith("unix://") else "REDIS_URL"


# -- deliveries shaped like Polar's ---------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    workspace_id: str
    integration_id: str
    path: str  # /polar/webhooks/<token>
    secret: str
    organization_id: str
    endpoint_id: str
    product_id: str


def connected(stack: Stack) -> Connection:
    """A workspace connected through the real path, and what Polar's deliveries to it need."""
    workspace_id, integration_id = connect_workspace(stack, 0)
    assert stack.engine is not None
    with stack.engine.connect() as db:
        token, ciphertext, organization_id, endpoint_id = db.execute(
            sa.text(
                "SELECT webhook_path_token, webhook_secret, polar_org_id, webhook_endpoint_id "
                "FROM polar_integration WHERE id = :i"
            ),
            {"i": integration_id},
        ).one()
        mappings: dict[str, str] = dict(
            db.execute(
                sa.text(
                    "SELECT plan_id, polar_product_id FROM polar_product_mapping WHERE integration_id = :i"
                ),
                {"i": integration_id},
            ).all()
        )
    settings = Settings.from_env(stack.env)
    secret = decrypt_secret(settings, integration_id, "webhook_secret", ciphertext)
    # A paid monthly plan if the catalog has one: its events carry amounts, like most of Polar's.
    product_id = mappings.get("pro-monthly") or next(iter(sorted(mappings.values())))
    return Connection(
        workspace_id,
        integration_id,
        f"/polar/webhooks/{token}",
        secret,
        organization_id,
        endpoint_id,
        product_id,
    )


def polar_examples(stack: Stack, connection: Connection) -> dict[str, dict[str, Any]]:
    """A purchase at the local Polar; the payloads of the events it raised for our endpoint."""
    with httpx.Client(base_url=stack.polar_url, timeout=30) as polar:
        polar.post(
            "/_emulator/simulate/purchase",
            json={
                "organization_id": connection.organization_id,
                "product_id": connection.product_id,
                "external_customer_id": "bench-example",
            },
        ).raise_for_status()
        events = polar.get("/_emulator/webhook-events", params={"endpoint_id": connection.endpoint_id}).json()
    payloads = {e["type"]: json.loads(e["payload"]) for e in events if e.get("payload")}
    wanted = ("order.paid", "subscription.active", "customer.state_changed")
    missing = [t for t in wanted if t not in payloads]
    if missing:
        raise RuntimeError(f"the local Polar raised no {missing} for the purchase ({sorted(payloads)})")
    examples = {t: payloads[t] for t in wanted}
    examples["subscription.updated"] = {**examples.pop("subscription.active"), "type": "subscription.updated"}
    return examples


@dataclass(frozen=True)
class Customer:
    id: str
    external_id: str
    email: str
    subscription_id: str

    def grant_id(self, n: int) -> str:
        """The customer's grant of the state's ``n``-th granted benefit."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.id}/grants/{n}"))


class Deliveries:
    """Polar's payloads for made-up customers, one event type after another; thread-safe."""

    TYPES = ("subscription.updated", "customer.state_changed", "order.paid")

    def __init__(self, examples: dict[str, dict[str, Any]], customers: int) -> None:
        self.examples = examples
        run = uuid.uuid4().hex[:6]
        self.customers = [
            Customer(
                str(uuid.uuid4()),
                f"bench-{run}-{n}",
                f"bench-{run}-{n}@customers.polar.local",
                str(uuid.uuid4()),
            )
            for n in range(customers)
        ]
        self._count = iter(range(1 << 62))
        self._lock = threading.Lock()

    def payload(self) -> dict[str, Any]:
        with self._lock:
            n = next(self._count)
        customer = self.customers[n % len(self.customers)]
        event_type = self.TYPES[(n // len(self.customers)) % len(self.TYPES)]
        now = datetime.now(UTC).isoformat()
        payload = copy.deepcopy(self.examples[event_type])
        payload["timestamp"] = now
        data = payload["data"]
        if event_type == "customer.state_changed":
            self._customer(data, customer, now)
            for subscription in data.get("active_subscriptions") or []:
                subscription.update(id=customer.subscription_id, modified_at=now)
            for n, grant in enumerate(data.get("granted_benefits") or []):
                grant.update(id=customer.grant_id(n), modified_at=now)
            return payload
        self._customer(data["customer"], customer, None)
        data["customer_id"] = customer.id
        data["modified_at"] = now
        if event_type == "subscription.updated":
            data["id"] = customer.subscription_id
        else:  # order.paid: a new order of the customer's subscription (a renewal, say)
            data["id"] = str(uuid.uuid4())
            data["subscription_id"] = customer.subscription_id
            if isinstance(data.get("subscription"), dict):
                data["subscription"].update(id=customer.subscription_id, customer_id=customer.id)
        return payload

    @staticmethod
    def _customer(data: dict[str, Any], customer: Customer, modified_at: str | None) -> None:
        data.update(id=customer.id, external_id=customer.external_id, email=customer.email)
        if modified_at is not None:
            data["modified_at"] = modified_at

    def body(self) -> bytes:
        return json.dumps(self.payload()).encode()


# -- ingest: our receiver vs a bare one, through gunicorn -----------------------------------------


def client_cpu() -> float:
    """CPU seconds this process (the client, every thread) used so far."""
    times = os.times()
    return times.user + times.system


def cpu_line(used: dict[str, float], deliveries: int) -> str:
    """``web 4.10, postgres 1.90, …``: milliseconds of CPU per delivery, each process that used 0.05 or more."""
    shares = sorted(((spent / deliveries * 1000, name) for name, spent in used.items()), reverse=True)
    return ", ".join(f"{name} {ms:.2f}" for ms, name in shares if ms >= 0.05)


def start_bare_receiver(stack: Stack, secret: str) -> str:
    """``bench/bare_receiver.py`` under the web's gunicorn configuration, on a port of its own."""
    port = free_port()
    metrics_dir = stack.workdir / "metrics-bare"  # gunicorn.conf.py empties its directory
    metrics_dir.mkdir(exist_ok=True)
    stack.spawn(
        "bare",
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "bench.bare_receiver:app"],
        {"PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), SECRET_ENV: secret},
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/", timeout=1).status_code == 404, "the bare receiver", procs=stack.procs
    )
    return url


def blast(
    clients: list[httpx.Client], path: str, deliveries: list[tuple[bytes, dict[str, str]]]
) -> tuple[float, Counter[int]]:
    """Send ``deliveries``, each client (a thread) its share; returns (seconds, answers by status)."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients) + 1)

    def send(client: httpx.Client, share: list[tuple[bytes, dict[str, str]]]) -> None:
        seen: Counter[int] = Counter()
        barrier.wait()
        for body, headers in share:
            try:
                seen[client.post(path, content=body, headers=headers).status_code] += 1
            except httpx.HTTPError:
                seen[0] += 1
        with lock:
            statuses.update(seen)

    threads = [
        threading.Thread(target=send, args=(client, deliveries[i :: len(clients)]))
        for i, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, statuses


def part_ingest(
    stack: Stack, connection: Connection, deliveries: Deliveries, args: argparse.Namespace
) -> dict[str, str]:
    stack.stop_process("worker")
    bare_url = start_bare_receiver(stack, connection.secret)
    signer = signer_for(connection.secret)
    targets = {"bare": (bare_url, 204), "ours": (stack.web_url, 202)}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pools = {
        name: [httpx.Client(base_url=url, timeout=30, limits=limits) for _ in range(args.concurrency)]
        for name, (url, _) in targets.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in targets}
    cpu: dict[str, dict[str, float]] = {name: {} for name in targets}
    unexpected: Counter[str] = Counter()
    warm_rate: dict[str, float] = {}
    try:
        for measured in [False] + [True] * args.ingest_rounds:
            for name, (_, expected) in targets.items():
                # The unmeasured round's pace sizes the measured ones: about --ingest-seconds each.
                count = int(max(300, warm_rate[name] * args.ingest_seconds)) if measured else 300
                batch = [
                    (body, signed_headers(signer, body)) for body in (deliveries.body() for _ in range(count))
                ]
                before, client_before = stack.cpu(), client_cpu()
                seconds, statuses = blast(pools[name], connection.path, batch)
                used = {**cpu_used(before, stack.cpu()), "client": client_cpu() - client_before}
                for status, n in statuses.items():
                    if status != expected:
                        unexpected[f"{name}:{status}"] += n
                if not measured:
                    warm_rate[name] = count / seconds
                    continue
                rates[name].append(count / seconds)
                for process, spent in used.items():
                    cpu[name][process] = cpu[name].get(process, 0.0) + spent / count
                print(
                    f"ingest round, {name}: {count / seconds:.0f} deliveries/s "
                    f"(CPU ms per delivery: {cpu_line(used, count)})",
                    flush=True,
                )
    finally:
        for pool in pools.values():
            for client in pool:
                client.close()
        stack.stop_process("bare")
    if unexpected:
        raise RuntimeError(f"unexpected answers (receiver:status → count): {dict(unexpected)}")
    ours, bare = statistics.median(rates["ours"]), statistics.median(rates["bare"])
    per = {name: {k: v / args.ingest_rounds for k, v in spent.items()} for name, spent in cpu.items()}
    print(f"ingest: ours {ours:.0f}/s, bare {bare:.0f}/s, ratio {ours / bare:.2f}", flush=True)
    for name in targets:
        print(f"  CPU ms per delivery, {name} (mean of the rounds): {cpu_line(per[name], 1)}")
    return {
        "ingest_ratio": f"{ours / bare:.2f}",
        "ours_rps": f"{ours:.0f}",
        "bare_rps": f"{bare:.0f}",
        "concurrency": str(args.concurrency),
        "ours_web_cpu_ms": f"{per['ours'].get('web', 0.0) * 1000:.2f}",
        "bare_cpu_ms": f"{per['bare'].get('bare', 0.0) * 1000:.2f}",
    }


# -- lag: receipt to state at a steady rate -------------------------------------------------------


@dataclass
class Sent:
    webhook_id: str
    status: int  # 0: no answer
    late: float  # seconds behind its scheduled time


def open_loop(url: str, path: str, signer: Webhook, bodies: list[bytes], rate: float) -> list[Sent]:
    """Send ``bodies`` at ``rate`` per second, each at its time whatever the answers' pace (signed
    as it is sent)."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30)
            clients.append(local.client)
        made: httpx.Client = local.client
        return made

    def send(data: bytes, scheduled: float) -> Sent:
        late = time.perf_counter() - scheduled
        headers = signed_headers(signer, data)
        try:
            status = client().post(path, content=data, headers=headers).status_code
        except httpx.HTTPError:
            status = 0
        return Sent(headers["webhook-id"], status, late)

    with ThreadPoolExecutor(max_workers=32) as pool:
        begin = time.perf_counter() + 0.05
        futures = []
        for i, data in enumerate(bodies):
            scheduled = begin + i / rate
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(send, data, scheduled))
        sent = [f.result() for f in futures]
    for c in clients:
        c.close()
    return sent


LAG_SQL = sa.text(
    "SELECT status, received_at, processed_at FROM polar_webhook_event "
    "WHERE integration_id = :i AND webhook_id = ANY(:ids)"
)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def wait_processed(stack: Stack, integration_id: str, ids: list[str], timeout: float) -> list[Any]:
    """The events of ``ids`` (status, received_at, processed_at) once none of them is pending."""
    assert stack.engine is not None
    deadline = time.monotonic() + timeout
    with stack.engine.connect() as db:
        while True:
            rows = db.execute(LAG_SQL, {"i": integration_id, "ids": ids}).all()
            db.rollback()
            pending = sum(1 for r in rows if r[0] == "pending")
            if not pending and len(rows) == len(ids):
                return list(rows)
            if time.monotonic() > deadline:
                stack.check()
                raise RuntimeError(
                    f"after {timeout:.0f}s, {len(rows)} of {len(ids)} events recorded, {pending} pending"
                )
            time.sleep(0.2)


def part_lag(
    stack: Stack, connection: Connection, deliveries: Deliveries, args: argparse.Namespace
) -> dict[str, str]:
    signer = signer_for(connection.secret)
    # A second's worth first, unmeasured, processed before the measure starts.
    bodies = [deliveries.body() for _ in range(int(args.lag_rate))]
    warm = open_loop(stack.web_url, connection.path, signer, bodies, args.lag_rate)
    wait_processed(stack, connection.integration_id, [s.webhook_id for s in warm if s.status == 202], 60)
    # The bodies are made before the clock starts, so the client's pace depends on the least work.
    bodies = [deliveries.body() for _ in range(int(args.lag_rate * args.lag_seconds))]
    before, client_before = stack.cpu(), client_cpu()
    began = time.perf_counter()
    sent = open_loop(stack.web_url, connection.path, signer, bodies, args.lag_rate)
    sending = time.perf_counter() - began
    accepted = sum(1 for s in sent if s.status == 202)
    ids = [s.webhook_id for s in sent if s.status == 202]
    rows = wait_processed(stack, connection.integration_id, ids, args.lag_timeout)
    used = {**cpu_used(before, stack.cpu()), "client": client_cpu() - client_before}
    lags = [(processed - received).total_seconds() * 1000 for _, received, processed in rows if processed]
    statuses = Counter(str(r[0]) for r in rows)
    # Each batch stamps its events with the time it started: one processed_at per batch.
    sizes = Counter(r[2] for r in rows if r[2] is not None)
    starts = sorted(sizes)
    gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(starts)] or [0.0]
    batches = len(sizes)
    p50, p95 = percentile(lags, 0.50), percentile(lags, 0.95)
    late_ms = max(s.late for s in sent) * 1000
    print(
        f"lag: {len(sent)} sent in {sending:.1f} s ({len(sent) / sending:.0f}/s), {accepted} answered 202, "
        f"{len(rows)} recorded ({dict(statuses)}) in {batches} batches "
        f"(events per batch: median {statistics.median(sizes.values()):.0f}, max {max(sizes.values())}; "
        f"between batch starts: median {statistics.median(gaps):.0f} ms, max {max(gaps):.0f} ms); "
        f"the client was at worst {late_ms:.0f} ms behind its schedule",
        flush=True,
    )
    print(f"  CPU ms per delivery, sending to processed: {cpu_line(used, len(sent))}")
    print(f"  receipt → processed: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(lags):.0f} ms", flush=True)
    return {
        "lag_p95_ms": f"{p95:.0f}",
        "lag_p50_ms": f"{p50:.0f}",
        "lag_max_ms": f"{max(lags):.0f}",
        "sent": str(len(sent)),
        "accepted": str(accepted),
        "processed": str(len(lags)),
        "batches": str(batches),
        "late_ms": f"{late_ms:.0f}",
        "worker_cpu_ms": f"{used.get('worker', 0.0) / len(sent) * 1000:.2f}",
        "web_cpu_ms": f"{used.get('web', 0.0) / len(sent) * 1000:.2f}",
    }


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("observability", "ingest", "lag", "all"), default="all")
    parser.add_argument("--deliveries", type=int, default=300, help="observability: per round")
    parser.add_argument(
        "--rounds", type=int, default=4, help="observability: per mode (on and off alternate)"
    )
    parser.add_argument(
        "--ingest-seconds", type=float, default=4.0, help="ingest: about how long each round sends"
    )
    parser.add_argument("--ingest-rounds", type=int, default=3, help="ingest: per receiver (they alternate)")
    parser.add_argument("--concurrency", type=int, default=8, help="ingest: client connections (threads)")
    parser.add_argument("--lag-rate", type=float, default=100.0, help="lag: deliveries per second")
    parser.add_argument("--lag-seconds", type=float, default=20.0, help="lag: how long to send")
    parser.add_argument("--lag-timeout", type=float, default=120.0, help="lag: wait for processing at most")
    parser.add_argument("--customers", type=int, default=50, help="ingest and lag: distinct customers")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    parser.add_argument(
        "--worker-arg", action="append", default=[], help="an argument for worker.py (repeatable)"
    )
    args = parser.parse_args()
    parts = ("observability", "lag", "ingest") if args.part == "all" else (args.part,)

    figures: dict[str, str] = {}
    try:
        if "observability" in parts:
            figures.update(part_observability(args))
        if "lag" in parts or "ingest" in parts:
            figures.update(run_stack(args, parts))
    finally:
        shutil.rmtree(WORKDIR, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


def run_stack(args: argparse.Namespace, parts: tuple[str, ...]) -> dict[str, str]:
    workdir = Path(tempfile.mkdtemp(prefix="connect-polar-webhook-bench-"))
    stack = Stack(workdir, args.worker_arg)
    figures: dict[str, str] = {}
    try:
        stack.start()
        connection = connected(stack)
        deliveries = Deliveries(polar_examples(stack, connection), args.customers)
        print(
            f"connected: integration {connection.integration_id}, "
            f"examples from a purchase of product {connection.product_id}",
            flush=True,
        )
        if "lag" in parts:
            figures.update(part_lag(stack, connection, deliveries, args))
        if "ingest" in parts:  # last: it stops the worker
            figures.update(part_ingest(stack, connection, deliveries, args))
    except BaseException:
        for proc in stack.procs:
            print(f"--- {proc.name} ({proc.log}):\n{proc.tail()}", file=sys.stderr)
        raise
    finally:
        stack.stop()
        if args.keep_logs:
            print(f"logs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return figures


if __name__ == "__main__":
    main()
