"""Callback → ``ready`` through the real path: the Procfile's web and worker, the callback over HTTP.

Run: ``.venv/bin/python bench/connect_latency.py [--latency-ms 100] [--rounds 5]``

What runs, each in its own process, as in production:

- the web as the Procfile starts it (``gunicorn -c gunicorn.conf.py wsgi:app``, its default
  workers and threads) and the worker (``python worker.py``), after the release step
  (``flask --app wsgi db upgrade``) on a fresh PostgreSQL database (``BENCH_DATABASE_URL`` or
  ``TEST_DATABASE_URL``'s server, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
  dropped at the end;
- a private ``redis-server`` on a Unix socket (else ``REDIS_URL``'s server, database 14, emptied);
- the local Polar (``python -m polar_emulator``), its demo client redirecting to our web's port.

One round: a new owner signs up over HTTP, clicks *Connect Polar* (the POST that redirects to
Polar's consent page) and allows on the consent page; we then time from the start of the
callback request (``GET /polar/callback?code=…&state=…`` with the owner's cookies) until the
connection is ``ready`` in the database (polled every few milliseconds). Rounds alternate
between 100 ms added to every Polar call (an emulator fault on ``/v1/*``, which covers the token
endpoint ``/v1/oauth2/token`` and every resource) and none.

The lower bound is the chain of Polar round trips that must follow one another (the saga's
structure, as ``bench/provision_latency.py``):

    callback: token exchange → introspect ∥ organizations ∥ userinfo
    worker:   userinfo ∥ the four list calls → create meters → create benefits (meter credits
              need the meter ids) → create products (benefits are attached by id) → attach
              benefits; the webhook endpoint is created beside them

so 7 round trips for the default catalog. The bound comes from that structure, not from what was
observed, so a call serialized needlessly would show in the ratio instead of raising its own bound.
The emulator's request log (each call's start and duration) gives the chain actually observed, the
longest run of calls each starting after the previous one ended (``observed_chain=``): it equals
the bound when nothing waits that need not.

Figures: ``ratio=`` (median callback → ready with the latency, over chain × latency; goal ≤ 1.5)
and ``overhead_ms=`` (median callback → ready with no latency added; goal ≤ 300). Each round also
shows where the time went: when the callback's response came, when the worker started the run
(its ``started_at``), and how long the run took (to its ``finished_at``). The first rounds also
pay the local Polar's own first requests (and each job process's first run); the medians do not.

The processes run as in production otherwise: JSON logs, multiprocess metrics, the development
environment's settings for plain-http local URLs, and Polar's per-client budget raised above what
the bench calls (the local Polar enforces none). ``--worker-arg=--simple`` (or ``--processes=N``)
compares worker models.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import redis
import sqlalchemy as sa
from cryptography.fernet import Fernet
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from rq import Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
PG_BASE_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
FALLBACK_REDIS_DB = 14
POLL_SECONDS = 0.003
READY_TIMEOUT = 60.0
PASSWORD = "bench-password-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, what: str, timeout: float = 60.0, procs: list[Proc] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # not up yet
            pass
        for proc in procs or ():
            proc.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Proc(name, process, log)


class Stack:
    """PostgreSQL database, Redis, the local Polar, the web and the worker, started as in production."""

    def __init__(self, workdir: Path, worker_args: list[str]) -> None:
        self.workdir = workdir
        self.worker_args = worker_args
        self.procs: list[Proc] = []
        self.db_name = f"connect_polar_bench_{uuid.uuid4().hex[:8]}"
        self.admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
        self.db_url = (
            sa.make_url(PG_BASE_URL).set(database=self.db_name).render_as_string(hide_password=False)
        )
        self.engine: sa.Engine | None = None
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.redis_url = ""
        self.polar_url = ""
        self.env: dict[str, str] = {}

    def start(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
        self.engine = sa.create_engine(self.db_url, pool_size=2)
        self.redis_url = self._start_redis()
        polar_port = free_port()
        self.polar_url = f"http://127.0.0.1:{polar_port}"
        callback = f"{self.web_url}/polar/callback"
        self.procs.append(
            start(
                "polar",
                [
                    sys.executable,
                    "-m",
                    "polar_emulator",
                    "--port",
                    str(polar_port),
                    "--redirect-uri",
                    callback,
                ],
                dict(os.environ),
                self.workdir,
            )
        )
        wait_until(
            lambda: (
                httpx.get(f"{self.polar_url}/.well-known/openid-configuration", timeout=1).status_code == 200
            ),
            "the local Polar",
            procs=self.procs,
        )
        metrics = self.workdir / "metrics"
        metrics.mkdir()
        self.env = {
            **os.environ,
            "APP_ENV": "development",
            "LOG_FORMAT": "json",
            "SECRET_KEY": "bench-secret-key-" + uuid.uuid4().hex,
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "PUBLIC_BASE_URL": self.web_url,
            "PORT": str(self.web_port),
            "POLAR_SERVER": "sandbox",
            "POLAR_API_URL": self.polar_url,
            "POLAR_WEB_URL": self.polar_url,
            "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
            "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "POLAR_OAUTH_REDIRECT_URI": callback,
            "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            # Polar's per-client budget (100 calls a minute in the sandbox) would defer the runs of a
            # bench that connects a workspace every few seconds; the local Polar has no limit here.
            "POLAR_RATE_LIMIT_PER_MINUTE": "100000",
        }
        for name in [k for k in self.env if k.startswith(("POLAR_PRODUCTION_", "POLAR_SANDBOX_"))]:
            del self.env[name]
        release = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, env=self.env, capture_output=True, text=True,
        )  # fmt: skip
        if release.returncode != 0:
            raise RuntimeError(f"release (db upgrade) failed:\n{release.stdout}\n{release.stderr}")
        self.procs.append(
            start(
                "web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], self.env, self.workdir
            )
        )
        self.procs.append(
            start("worker", [sys.executable, "worker.py", *self.worker_args], self.env, self.workdir)
        )
        wait_until(
            lambda: httpx.get(f"{self.web_url}/healthz", timeout=1).status_code == 200,
            "the web",
            procs=self.procs,
        )
        connection = redis.Redis.from_url(self.redis_url)
        wait_until(lambda: bool(Worker.all(connection=connection)), "the worker", procs=self.procs)
        connection.close()

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
            url = f"{url}/{FALLBACK_REDIS_DB}"
            redis.Redis.from_url(url).flushdb()
            return url
        sock = self.workdir / "redis.sock"
        self.procs.append(
            start(
                "redis",
                [
                    binary,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(sock),
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                dict(os.environ),
                self.workdir,
            )  # fmt: skip
        )
        url = f"unix://{sock}"
        wait_until(lambda: redis.Redis.from_url(url).ping(), "redis-server", procs=self.procs)
        return url

    def check(self) -> None:
        for proc in self.procs:
            proc.check()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.engine is not None:
            self.engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        self.admin.dispose()


# -- the owner's side, over HTTP ------------------------------------------------------------------


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_up(browser: httpx.Client, n: int) -> str:
    """A new owner and workspace over HTTP; returns the workspace's id."""
    token = csrf_token(browser.get("/signup").text)
    response = browser.post(
        "/signup",
        data={"csrf_token": token, "email": f"owner{n}-{uuid.uuid4().hex[:6]}@bench.test",
              "password": PASSWORD, "workspace": f"Bench {n}"},
    )  # fmt: skip
    assert response.status_code == 303, (response.status_code, response.text[:500])
    match = re.search(r"/workspaces/([^/]+)/polar", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def start_connect(browser: httpx.Client, workspace_id: str) -> str:
    """Click Connect Polar on the billing page; returns the consent page's URL."""
    page = browser.get(f"/workspaces/{workspace_id}/polar")
    assert page.status_code == 200, page.status_code
    response = browser.post(
        f"/workspaces/{workspace_id}/polar/connect",
        data={"csrf_token": csrf_token(page.text), "environment": "sandbox"},
    )
    assert response.status_code == 303, (response.status_code, response.text[:500])
    return response.headers["location"]


def consent(authorize_url: str) -> str:
    """Allow on Polar's consent page as demo@polar.local; returns the callback URL Polar redirects to."""
    parsed = urlparse(authorize_url)
    form = [(k, v[0]) for k, v in parse_qs(parsed.query).items()]
    form += [("user", "demo@polar.local"), ("action", "allow")]
    consent_page = httpx.get(authorize_url, timeout=10)
    assert consent_page.status_code == 200, consent_page.status_code
    response = httpx.post(
        f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return response.headers["location"]


# -- one round ------------------------------------------------------------------------------------

STATE_SQL = sa.text(
    "SELECT i.status, r.status, r.enqueued_at, r.started_at, r.finished_at, r.error "
    "FROM polar_integration i LEFT JOIN provisioning_run r ON r.integration_id = i.id "
    "WHERE i.workspace_id = :w ORDER BY r.created_at DESC LIMIT 1"
)


def observed_chain(calls: list[dict[str, Any]]) -> int:
    """The longest run of calls each starting once the previous one had ended."""
    spans = sorted((c["started_ms"], c["started_ms"] + c["duration_ms"]) for c in calls)
    best: list[int] = []
    for i, (s, _) in enumerate(spans):
        best.append(1 + max((best[j] for j in range(i) if spans[j][1] <= s), default=0))
    return max(best, default=0)


def one_round(stack: Stack, control: httpx.Client, n: int, latency_ms: float) -> dict[str, Any]:
    control.post("/_emulator/reset").raise_for_status()
    with httpx.Client(base_url=stack.web_url, timeout=30) as browser:
        workspace_id = sign_up(browser, n)
        callback_url = consent(start_connect(browser, workspace_id))
        control.delete("/_emulator/requests").raise_for_status()
        if latency_ms:
            control.post(
                "/_emulator/faults", json={"path": "/v1/*", "latency_ms": latency_ms}
            ).raise_for_status()
        assert stack.engine is not None
        with stack.engine.connect() as db:
            began, began_epoch = time.perf_counter(), time.time()
            response = browser.get(callback_url)
            answered = time.perf_counter()
            assert response.status_code == 303, (response.status_code, response.text[:800])
            while True:
                row = db.execute(STATE_SQL, {"w": workspace_id}).one_or_none()
                db.rollback()
                if row is not None and row[0] == "ready":
                    break
                if row is not None and row[0] in ("failed", "needs_reconnect"):
                    raise RuntimeError(f"round {n}: the connection is {row[0]}: {row[5]}")
                if time.perf_counter() - began > READY_TIMEOUT:
                    stack.check()
                    raise RuntimeError(f"round {n}: not ready after {READY_TIMEOUT}s ({row})")
                time.sleep(POLL_SECONDS)
            ready = time.perf_counter()
    control.delete("/_emulator/faults").raise_for_status()
    _, _, _, started_at, finished_at, _ = row
    calls = [c for c in control.get("/_emulator/requests").json() if c["path"].startswith("/v1/")]
    wall_ms = (ready - began) * 1000
    # The run's timestamps come from the worker's clock: the same machine's as ours.
    start_ms = (epoch(started_at) - began_epoch) * 1000
    return {
        "latency_ms": latency_ms,
        "wall_ms": wall_ms,
        "web_ms": (answered - began) * 1000,
        "start_ms": start_ms,
        "run_ms": (epoch(finished_at) - epoch(started_at)) * 1000,
        "calls": len(calls),
        "chain": observed_chain(calls) if latency_ms else 0,
    }


def epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def dependent_chain() -> int:
    from provisioning.catalog import load_catalog
    from provisioning.config import DEFAULT_PLANS_FILE

    catalog = load_catalog(DEFAULT_PLANS_FILE)
    chain = 2  # the callback: token exchange → introspect ∥ organizations ∥ userinfo
    chain += 1  # the worker: userinfo ∥ the four list calls
    chain += 1 if catalog.meters else 0
    chain += 1 if catalog.benefits else 0
    chain += 1  # products
    chain += 1 if any(plan.benefits for plan in catalog.plans) else 0
    return chain


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['wall_ms']:.0f} ms (callback answered at {r['web_ms']:.0f}, run started at {r['start_ms']:.0f} "
        f"and took {r['run_ms']:.0f}; {r['calls']} calls"
        + (f", chain {r['chain']})" if r["latency_ms"] else ")")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5, help="rounds with the latency, and as many without")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    parser.add_argument(
        "--worker-arg",
        action="append",
        default=[],
        help="an argument for worker.py (repeatable), e.g. --worker-arg=--simple to compare worker models",
    )
    args = parser.parse_args()

    chain = dependent_chain()
    lower_ms = chain * args.latency_ms
    workdir = Path(tempfile.mkdtemp(prefix="connect-polar-connect-bench-"))
    stack = Stack(workdir, args.worker_arg)
    results: list[dict[str, Any]] = []
    try:
        stack.start()
        with httpx.Client(base_url=stack.polar_url, timeout=30) as control:
            for n in range(2 * args.rounds):
                latency = args.latency_ms if n % 2 == 0 else 0.0
                result = one_round(stack, control, n, latency)
                results.append(result)
                print(f"round {n + 1} ({latency:.0f} ms per Polar call): {describe(result)}", flush=True)
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

    slow = [r for r in results if r["latency_ms"]]
    fast = [r for r in results if not r["latency_ms"]]
    wall = statistics.median(r["wall_ms"] for r in slow)
    overhead = statistics.median(r["wall_ms"] for r in fast)
    seen = max(r["chain"] for r in slow)
    calls = max(r["calls"] for r in slow)
    print(
        f"latency per Polar call: {args.latency_ms:.0f} ms; dependent chain: {chain} round trips = {lower_ms:.0f} ms"
    )
    print(
        f"callback → ready with the latency (median of {len(slow)}): {wall:.0f} ms; longest chain seen: {seen}"
    )
    print(f"callback → ready with no latency added (median of {len(fast)}): {overhead:.0f} ms")
    print(
        f"ratio={wall / lower_ms:.2f} overhead_ms={overhead:.0f} wall_ms={wall:.0f} lower_bound_ms={lower_ms:.0f} "
        f"chain={chain} observed_chain={seen} calls={calls} "
        f"web_ms={statistics.median(r['web_ms'] for r in fast):.0f} "
        f"start_ms={statistics.median(r['start_ms'] for r in fast):.0f} "
        f"run_ms={statistics.median(r['run_ms'] for r in fast):.0f} rounds={len(results)}"
    )


if __name__ == "__main__":
    main()
