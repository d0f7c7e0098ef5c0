"""A fleet on one OAuth client: N workspaces connect at once, then a catalog change is rolled out to
all of them, while people make interactive calls; Polar allows the client R requests a minute.

Run: ``.venv/bin/python bench/fleet.py [--workspaces 40] [--rate 300] [--latency-ms 100]``

Real parts, as the Procfile runs them: two workers (``python worker.py --processes 1`` each: one
job process apiece), PostgreSQL (a database of the benchmark's own), Redis (database 13 of ``REDIS_URL``'s server, emptied first) and the local
Polar in its own process, limiting the demo client to R requests per minute (its
``/_emulator/rate-limit``, Polar's fixed windows) and adding ``--latency-ms`` to every call. The
platform's budget is set to the same R (``POLAR_RATE_LIMIT_PER_MINUTE``). Each workspace's owner
has a Polar organization of their own. The connects run in this process (consent, code exchange,
organization list: interactive calls), their runs in the workers (background). Twenty interactive
calls (an organization read with a connected workspace's token) are made at random moments of the
wave; each first takes room in the budget, and its wait is what ``interactive_p95_ms`` reports.

Figures (the last line carries them as ``key=value``):
- ``utilization``: calls to Polar per minute during the wave (first to last call) over R;
- ``polar_429``: 429 answers from the local Polar (wave and rollout);
- ``failed``: runs that failed; ``duplicates``: workspaces with more than one object per plan,
  benefit or meter, or more than one webhook endpoint, counted at the local Polar;
- ``interactive_p95_ms``: the interactive calls' budget wait, 95th percentile;
- ``rollout_ratio``: wall time of the rollout (start to every run over) over the time R allows for
  its calls (its calls counted at the local Polar ÷ R), started once the wave's last minute passed.

Calls are counted as Polar counts them against the client: with one of its access tokens (the
token endpoints are counted by address, in a budget of their own).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from pathlib import Path

import httpx
import psycopg
import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI  # noqa: E402

from bench.provision_latency import start_emulator  # noqa: E402
from provisioning import db as db_module  # noqa: E402
from provisioning.catalog import load_catalog  # noqa: E402
from provisioning.catalog.desired import WORKSPACE_KEY  # noqa: E402
from provisioning.config import DEFAULT_PLANS_FILE, Settings  # noqa: E402
from provisioning.connect.service import begin_connect, complete_connect  # noqa: E402
from provisioning.integrations.models import PolarIntegration  # noqa: E402
from provisioning.integrations.service import access_token  # noqa: E402
from provisioning.polar.client import PolarApi  # noqa: E402
from provisioning.ratelimit import lanes, registry  # noqa: E402
from provisioning.ratelimit.budget import BudgetExhausted  # noqa: E402
from provisioning.runs.models import ProvisioningRun, RunStatus  # noqa: E402
from provisioning.runs.rollout import plan_rollout, start_rollout  # noqa: E402
from tests.factories import make_owner  # noqa: E402
from tests.migrations_util import upgrade_to_head  # noqa: E402
from tests.provisioning.conftest import consent  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DONE = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def fresh_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TOKEN_ENDPOINTS = ("/v1/oauth2/token", "/v1/oauth2/introspect", "/v1/oauth2/revoke")


def bearer_calls(control: httpx.Client) -> list[dict]:
    """Calls Polar counts against the OAuth client: those made with one of its access tokens (the
    token endpoints authenticate the client itself and are counted by address instead)."""
    return [
        r
        for r in control.get("/_emulator/requests").json()
        if r["client"] and r["path"].startswith("/v1") and r["path"] not in TOKEN_ENDPOINTS
    ]


def runs_over(database: db_module.Database, run_ids: list[str]) -> bool:
    with database.transaction() as session:
        statuses = session.scalars(sa.select(ProvisioningRun.status).where(ProvisioningRun.id.in_(run_ids)))
        return all(status in DONE for status in statuses)


def failed_runs(database: db_module.Database, run_ids: list[str]) -> int:
    with database.transaction() as session:
        return len(
            session.scalars(
                sa.select(ProvisioningRun.id).where(
                    ProvisioningRun.id.in_(run_ids), ProvisioningRun.status != RunStatus.SUCCEEDED
                )
            ).all()
        )


def wait_for_runs(database: db_module.Database, run_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not runs_over(database, run_ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"runs still under way after {timeout:.0f}s")
        time.sleep(0.25)


class Fleet:
    def __init__(
        self, args: argparse.Namespace, url: str, control: httpx.Client, env: dict[str, str]
    ) -> None:
        self.args = args
        self.url = url
        self.control = control
        self.env = env
        self.settings = Settings.from_env(env)
        self.database = db_module.configure(
            db_module.Database(db_module.make_engine(self.settings.database_url, pool_size=12))
        )
        registry.install(self.settings)  # this process's connects and interactive calls share it too
        self.integrations: list[str] = []
        self.tokens: list[str] = []
        self.lock = threading.Lock()

    def connect(self, n: int) -> str:
        """Owner n signs up and connects Polar as the owner of their own organization."""
        email = f"owner{n}@fleet.test"
        self.control.post(
            "/_emulator/users",
            json={"email": email, "organizations": [{"name": f"Fleet {n}", "slug": f"fleet-{n}"}]},
        ).raise_for_status()
        with self.database.transaction() as session:
            user_id, workspace_id = astuple(make_owner(session, f"Fleet {n}", email=email))
        with self.database.transaction() as session:
            start = begin_connect(session, self.settings, workspace_id=workspace_id, user_id=user_id)
        code, state = consent(start.authorize_url, user=email)
        with self.database.transaction() as session:
            integration = complete_connect(
                session, self.settings, state=state, code=code, user_id=user_id, browser_nonce=start.nonce
            )
            run_id = session.scalar(
                sa.select(ProvisioningRun.id).where(ProvisioningRun.integration_id == integration.id)
            )
            token = access_token(self.settings, integration)
            with self.lock:
                self.integrations.append(integration.id)
                self.tokens.append(token)
        assert run_id is not None
        return run_id

    def interactive_calls(self, moments: list[float], started: float, waits: list[float]) -> None:
        """At each moment (seconds after ``started``), one interactive read; its budget wait recorded."""
        budget = registry.budget_for(self.url)
        assert budget is not None
        for moment in moments:
            delay = started + moment - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                token = random.choice(self.tokens) if self.tokens else None
            if token is None:
                continue
            t0 = time.monotonic()
            try:
                budget.acquire(lanes.Caller())
            except BudgetExhausted as exc:  # a person would be told to try again: count the whole wait
                waits.append(time.monotonic() - t0 + exc.retry_after)
                print(f"interactive call at {time.monotonic() - started:.1f}s refused: {exc}", flush=True)
                continue
            waits.append(time.monotonic() - t0)
            api = PolarApi(self.url, token)
            api.budget = None  # room already taken above, where its wait was timed
            api.read(api.sdk.organizations.list, action="list organizations", scope="organizations:read")

    def duplicates(self) -> int:
        catalog = load_catalog(self.settings.plans_file)
        wanted = {
            "/v1/products/": len(catalog.plans),
            "/v1/benefits/": len(catalog.benefits),
            "/v1/meters/": len(catalog.meters),
        }
        bad = 0
        with self.database.transaction() as session:
            rows = session.scalars(
                sa.select(PolarIntegration).where(PolarIntegration.id.in_(self.integrations))
            )
            for integration in rows:
                headers = {"Authorization": f"Bearer {access_token(self.settings, integration)}"}
                params = {"organization_id": integration.polar_org_id, "limit": 100}
                for path, count in wanted.items():
                    items = self.control.get(path, params=params, headers=headers).json()["items"]
                    ours = [
                        i
                        for i in items
                        if (i.get("metadata") or {}).get(WORKSPACE_KEY) == integration.workspace_id
                    ]
                    bad += len(ours) > count
                endpoints = self.control.get("/v1/webhooks/endpoints", params=params, headers=headers).json()
                bad += endpoints["pagination"]["total_count"] > 1
        return bad


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspaces", type=int, default=40)
    parser.add_argument("--rate", type=int, default=300, help="R: Polar's limit and the budget, per minute")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interactive", type=int, default=20)
    args = parser.parse_args()
    rate, n = args.rate, args.workspaces
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    proc, url = start_emulator()
    db_name = f"connect_polar_fleet_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="connect-polar-fleet-"))
    plans = tmp / "plans.toml"
    plans.write_text(DEFAULT_PLANS_FILE.read_text())
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": fresh_database(db_name),
        "REDIS_URL": redis_url,
        "SECRET_KEY": "fleet-bench-secret-key-0123456789abcdefghij",
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "PLANS_FILE": str(plans),
        "POLAR_API_URL": url,
        "POLAR_WEB_URL": url,
        "POLAR_OAUTH_CLIENT_ID": DEMO_CLIENT_ID,
        "POLAR_OAUTH_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "POLAR_OAUTH_REDIRECT_URI": DEMO_REDIRECT_URI,
        "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "POLAR_RATE_LIMIT_PER_MINUTE": str(rate),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-", dir=tmp),
        "LOG_FORMAT": "json",
    }
    workers: list[subprocess.Popen[bytes]] = []
    try:
        upgrade_to_head(sa.create_engine(env["DATABASE_URL"]))
        control = httpx.Client(base_url=url, timeout=30)
        fleet = Fleet(args, url, control, env)
        log = open(tmp / "workers.log", "wb")  # noqa: SIM115
        for _ in range(args.workers):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "worker.py", "--processes", "1"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
        time.sleep(3)
        for worker in workers:
            if worker.poll() is not None:
                raise SystemExit(f"a worker exited at start-up; see {tmp / 'workers.log'}")
        control.post("/_emulator/rate-limit", json={"per_minute": rate}).raise_for_status()
        control.post(
            "/_emulator/faults", json={"path": "/v1/*", "latency_ms": args.latency_ms}
        ).raise_for_status()
        control.delete("/_emulator/requests")

        # The wave: every owner connects at once; people make interactive calls meanwhile.
        catalog = load_catalog(plans)
        expected_s = 60 * n * 23 / rate
        moments = sorted(random.uniform(1, expected_s) for _ in range(args.interactive))
        waits: list[float] = []
        started = time.monotonic()
        people = threading.Thread(target=fleet.interactive_calls, args=(moments, started, waits), daemon=True)
        people.start()
        with ThreadPoolExecutor(12) as pool:
            wave_runs = list(pool.map(fleet.connect, range(n)))
        wait_for_runs(fleet.database, wave_runs, timeout=expected_s * 4 + 120)
        wave_s = time.monotonic() - started
        people.join(timeout=expected_s * 2)
        wave = bearer_calls(control)
        (tmp / "wave.json").write_text(json.dumps(wave))
        first, last = min(r["started_ms"] for r in wave), max(r["started_ms"] for r in wave)
        per_minute = len(wave) / ((last - first) / 60000)
        wave_429 = sum(r["status"] == 429 for r in wave)
        print(
            f"wave: {n} workspaces connected and provisioned in {wave_s:.1f}s; {len(wave)} calls to Polar "
            f"in {(last - first) / 1000:.1f}s = {per_minute:.0f}/min (R = {rate}/min); {wave_429} answered 429"
        )

        # The rollout: a catalog change, to every ready connection, once the wave's minute has
        # passed (the rollout's own pacing is measured, not the wave's leftovers).
        time.sleep(62)
        plans.write_text(plans.read_text().replace("For growing teams", "For teams that grow"))
        changed = load_catalog(plans)
        control.delete("/_emulator/requests")
        rollout_started = time.monotonic()
        with fleet.database.transaction() as session:
            plan = plan_rollout(session, changed.revision)
            outcome = start_rollout(session, plan, redis_url, reason="fleet benchmark")
            batch_id = outcome.batch.id
        with fleet.database.transaction() as session:
            rollout_runs = list(
                session.scalars(sa.select(ProvisioningRun.id).where(ProvisioningRun.batch_id == batch_id))
            )
        wait_for_runs(fleet.database, rollout_runs, timeout=expected_s * 4 + 120)
        rollout_s = time.monotonic() - rollout_started
        rollout = bearer_calls(control)
        rollout_429 = sum(r["status"] == 429 for r in rollout)
        allowed_s = 60 * len(rollout) / rate
        print(
            f"rollout: {len(rollout_runs)} runs, {len(rollout)} calls to Polar ({len(rollout) / max(1, n):.1f} "
            f"per workspace) in {rollout_s:.1f}s; R allows them in {allowed_s:.1f}s; {rollout_429} answered 429"
        )

        control.post("/_emulator/rate-limit", json={"per_minute": None}).raise_for_status()
        control.delete("/_emulator/faults")
        failed = failed_runs(fleet.database, wave_runs + rollout_runs)
        duplicates = fleet.duplicates()
        p95 = statistics.quantiles(waits, n=20)[-1] * 1000 if len(waits) >= 2 else float("nan")
        print(
            f"interactive calls: {len(waits)}, budget wait median {statistics.median(waits) * 1000:.0f} ms, "
            f"max {max(waits) * 1000:.0f} ms"
        )
        print(
            f"catalog: {len(catalog.plans)} plans; workers: {args.workers}; latency per call: {args.latency_ms:.0f} ms"
        )
        print(
            f"utilization={per_minute / rate:.2f} polar_429={wave_429 + rollout_429} failed={failed} "
            f"duplicates={duplicates} interactive_p95_ms={p95:.0f} rollout_ratio={rollout_s / allowed_s:.2f} "
            f"workspaces={n} rate={rate} wave_s={wave_s:.1f} rollout_s={rollout_s:.1f}"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        proc.terminate()
        proc.wait(timeout=10)
        drop_database(db_name)


if __name__ == "__main__":
    main()
