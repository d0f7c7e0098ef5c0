"""The platform's processes started as in production, and an owner's connect over HTTP, for the
benchmarks that measure through the real path (``bench/connect_latency.py``,
``bench/webhook_ingest.py``).

:class:`Stack` starts, each in its own process:

- the web as the Procfile starts it (``gunicorn -c gunicorn.conf.py wsgi:app``, its default workers
  and threads) and the worker (``python worker.py``), after the release step
  (``flask --app wsgi db upgrade``) on a fresh PostgreSQL database (``BENCH_DATABASE_URL`` or
  ``TEST_DATABASE_URL``'s server, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
  dropped at the end;
- a private ``redis-server`` on a Unix socket (else ``REDIS_URL``'s server, database 14, emptied);
- the local Polar (``python -m polar_emulator``), its demo client redirecting to our web's port.

The processes run as in production otherwise: JSON logs, multiprocess metrics, the development
environment's settings for plain-http local URLs, and Polar's per-client budget raised above what a
benchmark calls (the local Polar enforces none). :meth:`Stack.cpu` reads the CPU each process (and
each PostgreSQL backend of the database) has used, from Linux's ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
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
BIN = Path(sys.executable).parent
PG_BASE_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
FALLBACK_REDIS_DB = 14
PASSWORD = "bench-password-0123"
READY_TIMEOUT = 60.0


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


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command's name (Linux), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes used so far (Linux's /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def session_pids(leader: int) -> list[int]:
    """The processes of ``leader``'s session: a process started by :func:`start` and its children."""
    if not Path("/proc").is_dir():
        return []
    return [
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and (_stat(p) or ["", "", "", ""])[3] == str(leader)
    ]


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process (the PostgreSQL backends together, as ``postgres``) used between
    two :meth:`Stack.cpu` readings."""
    used: dict[str, float] = {}
    for key, seconds in after.items():
        name = key.split(":", 1)[0]
        used[name] = used.get(name, 0.0) + seconds - before.get(key, 0.0)
    return used


def start(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Proc(name, process, log)


def start_redis(workdir: Path) -> tuple[str, Proc | None]:
    """A private ``redis-server`` on a Unix socket in ``workdir`` (its URL and process), else
    ``REDIS_URL``'s server, database 14, emptied (and no process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
        url = f"{url}/{FALLBACK_REDIS_DB}"
        redis.Redis.from_url(url).flushdb()
        return url, None
    sock = workdir / "redis.sock"
    proc = start(
        "redis",
        [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        dict(os.environ),
        workdir,
    )  # fmt: skip
    url = f"unix://{sock}"
    wait_until(lambda: redis.Redis.from_url(url).ping(), "redis-server", procs=[proc])
    return url, proc


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
        self.redis_url, redis_proc = start_redis(self.workdir)
        if redis_proc is not None:
            self.procs.append(redis_proc)
        callback = f"{self.web_url}/polar/callback"
        self.polar_url = self.start_polar(callback)
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
            # bench that connects a workspace every few seconds, or pace its calls; the local Polar
            # has no limit here.
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
        self.spawn("web", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"])
        self.start_worker()
        wait_until(
            lambda: httpx.get(f"{self.web_url}/healthz", timeout=1).status_code == 200,
            "the web",
            procs=self.procs,
        )
        self.wait_for_worker()

    def start_polar(self, callback: str) -> str:
        """Start the local Polar (``python -m polar_emulator``) redirecting to ``callback``; its URL."""
        polar_port = free_port()
        polar_url = f"http://127.0.0.1:{polar_port}"
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
            lambda: httpx.get(f"{polar_url}/.well-known/openid-configuration", timeout=1).status_code == 200,
            "the local Polar",
            procs=self.procs,
        )
        return polar_url

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        """Start ``args`` in the platform's environment (``env`` added to it), stopped with the rest."""
        proc = start(name, args, {**self.env, **(env or {})}, self.workdir)
        self.procs.append(proc)
        return proc

    def start_worker(self) -> Proc:
        """``python worker.py`` (the Procfile's worker), with the stack's worker arguments."""
        return self.spawn("worker", [sys.executable, "worker.py", *self.worker_args])

    def wait_for_worker(self) -> None:
        connection = redis.Redis.from_url(self.redis_url)
        try:
            wait_until(lambda: bool(Worker.all(connection=connection)), "the worker", procs=self.procs)
        finally:
            connection.close()

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process started (with its children) and by each
        PostgreSQL backend serving the stack's database now (``postgres:<pid>``); see
        :func:`cpu_used`."""
        used = {proc.name: cpu_seconds(session_pids(proc.process.pid)) for proc in self.procs}
        if self.engine is not None:
            with self.engine.connect() as conn:
                backends = conn.execute(
                    sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                ).scalars()
                used.update({f"postgres:{pid}": cpu_seconds([pid]) for pid in backends})
        return used

    def stop_process(self, name: str) -> None:
        """Stop the process started as ``name`` (SIGTERM to its group, as the platform does)."""
        for proc in [p for p in self.procs if p.name == name]:
            proc.stop()
            self.procs.remove(proc)

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


INTEGRATION_SQL = sa.text(
    "SELECT i.id, i.status, r.error FROM polar_integration i "
    "LEFT JOIN provisioning_run r ON r.integration_id = i.id "
    "WHERE i.workspace_id = :w ORDER BY r.created_at DESC LIMIT 1"
)


def connect_workspace(stack: Stack, n: int, timeout: float = READY_TIMEOUT) -> tuple[str, str]:
    """A new owner signs up, connects Polar (consent as demo@polar.local) and waits until the
    connection is ``ready``; returns (workspace id, integration id)."""
    assert stack.engine is not None
    with httpx.Client(base_url=stack.web_url, timeout=30) as browser:
        workspace_id = sign_up(browser, n)
        response = browser.get(consent(start_connect(browser, workspace_id)))
        assert response.status_code == 303, (response.status_code, response.text[:800])
    deadline = time.monotonic() + timeout
    with stack.engine.connect() as db:
        while True:
            row = db.execute(INTEGRATION_SQL, {"w": workspace_id}).one_or_none()
            db.rollback()
            if row is not None and row[1] == "ready":
                return workspace_id, str(row[0])
            if row is not None and row[1] in ("failed", "needs_reconnect"):
                raise RuntimeError(f"the connection is {row[1]}: {row[2]}")
            if time.monotonic() > deadline:
                stack.check()
                raise RuntimeError(f"the connection is not ready after {timeout:.0f}s ({row})")
            time.sleep(0.05)
