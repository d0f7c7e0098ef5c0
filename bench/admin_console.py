"""How the support console's server time grows with the fleet.

Seeds a fresh PostgreSQL database with 100 and then 20,000 workspaces (each with an owner, a
connection, two runs with their steps and two webhook events), plus one workspace with 1,000 runs
and 10,000 events and one with 10 of each, then measures the server time of the console's pages
through the real app (Flask's test client, a signed-in staff user):

- the workspaces list: first page, a status filter, a search, a page deep in the list (100 rows
  from its end, reached by keyset paging);
- a workspace page with 1,000 runs and 10,000 events vs one with 10.

Last line: ``list_ratio=`` (p95 of the list requests at 20,000 over p95 at 100; goal <= 2.0),
``detail_ratio=`` (p95 of the big workspace page over the small one's; goal <= 2.0),
``list_p95_ms=`` (at 20,000), ``detail_p95_ms=``.

    .venv/bin/python bench/admin_console.py [--rounds 30]

Needs PostgreSQL (``BENCH_DATABASE_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``;
a database of its own is created and dropped) and Redis (``REDIS_URL``, default db 14 on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402

BASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STEPS = (
    "verify_account",
    "resolve_organization",
    "ensure_meters",
    "ensure_benefits",
    "ensure_products",
    "ensure_webhook_endpoint",
    "save_mappings",
)
STATUSES = ["ready"] * 8 + ["failed", "needs_reconnect"]


def _id() -> str:
    return str(uuid.uuid4())


def seed(engine: sa.Engine, count: int, *, start: int, now: datetime) -> None:
    """``count`` workspaces, each with an owner, a connection, 2 runs of 7 steps and 2 events (COPY)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        users, workspaces, members, integrations, runs, steps, events = [], [], [], [], [], [], []
        for n in range(start, start + count):
            user_id, ws_id, integration_id = _id(), _id(), _id()
            at = now - timedelta(minutes=n)
            users.append((user_id, f"owner{n}@fleet.example", "!", False, at))
            workspaces.append((ws_id, f"Workspace {n:06d}", at))
            members.append((_id(), ws_id, user_id, "owner", at))
            status = STATUSES[n % len(STATUSES)]
            integrations.append(
                (
                    integration_id,
                    ws_id,
                    "sandbox",
                    status,
                    user_id,
                    f"org-{n}",
                    f"org-{n}",
                    f"Org {n}",
                    "rev-old" if n % 7 == 0 else "rev-now",
                    f"path{n:08d}",
                    "[]",
                    "[]",
                    at,
                    at,
                )
            )
            for r in range(2):
                run_id = _id()
                run_status = "failed" if status == "failed" and r == 1 else "succeeded"
                runs.append((run_id, integration_id, run_status, "connect", 1, "{}", at, at, at))
                for position, name in enumerate(STEPS):
                    steps.append((_id(), run_id, name, position, "succeeded", 10, "[]"))
            for e in range(2):
                events.append((_id(), integration_id, f"wh_{n}_{e}", "order.created", "{}", at))
        copies = [
            ("users (id, email, password_hash, staff, created_at)", users),
            ("workspace (id, name, created_at)", workspaces),
            ("membership (id, workspace_id, user_id, role, created_at)", members),
            (
                "polar_integration (id, workspace_id, environment, status, connected_by_user_id, polar_org_id, "
                "polar_org_slug, polar_org_name, catalog_revision, webhook_path_token, granted_organization_ids, "
                "reachable_organizations, created_at, updated_at)",
                integrations,
            ),
            (
                "provisioning_run (id, integration_id, status, trigger, attempts, api_calls, created_at, "
                "started_at, finished_at)",
                runs,
            ),
            ("provisioning_step (id, run_id, name, position, status, duration_ms, polar_ids)", steps),
            (
                "polar_webhook_event (id, integration_id, webhook_id, event_type, payload, received_at)",
                events,
            ),
        ]
        for table, rows in copies:
            with cur.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    vacuum(engine)


def vacuum(engine: sa.Engine) -> None:
    """What autovacuum does for a live database: statistics, and the visibility map that lets
    counts read indexes only."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def deep_cursor(engine: sa.Engine, depth: int) -> str:
    """The list position ``depth`` rows down: where "Older" leads after many pages."""
    with engine.connect() as conn:
        at, key = conn.execute(
            sa.text(
                "SELECT updated_at, id FROM polar_integration ORDER BY updated_at DESC, id DESC OFFSET :n LIMIT 1"
            ),
            {"n": depth},
        ).one()
    return f"{at.astimezone(UTC).replace(tzinfo=None).isoformat()}~{key}"


def seed_history(engine: sa.Engine, workspace_id: str, runs: int, events: int, now: datetime) -> None:
    integration_id = _id()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "INSERT INTO polar_integration (id, workspace_id, environment, status, polar_org_id, catalog_revision, "
            "webhook_path_token, granted_organization_ids, reachable_organizations, created_at, updated_at) "
            "VALUES (%s, %s, 'sandbox', 'ready', 'org-history', 'rev-now', %s, '[]', '[]', %s, %s)",
            (integration_id, workspace_id, _id().replace("-", ""), now, now),
        )
        with cur.copy(
            "COPY provisioning_run (id, integration_id, status, trigger, attempts, api_calls, created_at) FROM STDIN"
        ) as copy:
            run_ids = []
            for n in range(runs):
                run_id = _id()
                run_ids.append(run_id)
                copy.write_row(
                    (run_id, integration_id, "succeeded", "admin", 1, "{}", now - timedelta(seconds=n))
                )
        with cur.copy(
            "COPY provisioning_step (id, run_id, name, position, status, polar_ids) FROM STDIN"
        ) as copy:
            for run_id in run_ids:
                for position, name in enumerate(STEPS):
                    copy.write_row((_id(), run_id, name, position, "succeeded", "[]"))
        with cur.copy(
            "COPY polar_webhook_event (id, integration_id, webhook_id, event_type, payload, received_at) FROM STDIN"
        ) as copy:
            for n in range(events):
                copy.write_row(
                    (
                        _id(),
                        integration_id,
                        f"hist_{n}",
                        "order.created",
                        '{"type": "order.created"}',
                        now - timedelta(seconds=n),
                    )
                )
        raw.commit()
    finally:
        raw.close()
    vacuum(engine)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]


def measure(client, paths: list[str], rounds: int, label: str) -> list[float]:
    for path in paths:  # warm: template compilation, first connections
        assert client.get(path).status_code == 200, path
    samples: list[float] = []
    per_path: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            t0 = time.perf_counter()
            response = client.get(path)
            took = (time.perf_counter() - t0) * 1000
            samples.append(took)
            per_path[path].append(took)
            assert response.status_code == 200, (path, response.status_code)
    for path, times in per_path.items():
        print(f"  {label}: {path} p95 {p95(times):.1f} ms")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--large", type=int, default=20_000)
    args = parser.parse_args()

    from app import create_app
    from app.accounts import service
    from provisioning.config import Settings
    from provisioning.db import Database
    from tests.migrations_util import upgrade_to_head

    name = f"connect_polar_bench_{os.getpid()}"
    admin = sa.create_engine(BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(BASE_URL).set(database=name).render_as_string(hide_password=False)
    try:
        database = Database(url=url)
        assert database.engine is not None
        upgrade_to_head(database.engine)
        settings = Settings(
            env="test",
            database_url=url,
            redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
            secret_key="bench-secret-key-" + "x" * 32,
            polar_oauth_client_id="bench",
            polar_oauth_client_secret="bench",
            token_encryption_keys=[Fernet.generate_key()],
        )
        app = create_app(settings, database=database)
        now = datetime.now(UTC)
        with database.transaction() as session:
            service.create_user(session, "staff@bench.example", "bench-password", staff=True)
            big_owner = service.create_user(session, "big@bench.example", "bench-password")
            big = service.create_workspace(session, "Busy workspace", big_owner)
            small = service.create_workspace(session, "Quiet workspace", big_owner)
            big_id, small_id = big.id, small.id
        seed_history(database.engine, big_id, 1000, 10_000, now)
        seed_history(database.engine, small_id, 10, 10, now)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        login = client.post(
            "/login", data={"email": "staff@bench.example", "password": "bench-password", "csrf_token": token}
        )
        assert login.status_code == 303, login.status_code

        def lists(count: int) -> list[str]:
            before = deep_cursor(database.engine, max(0, count - 100))
            return [
                "/admin/workspaces",
                "/admin/workspaces?status=failed",
                "/admin/workspaces?q=Workspace+0000",
                f"/admin/workspaces?before={before}",
            ]

        seed(database.engine, 100, start=0, now=now)
        small_list = measure(client, lists(100), args.rounds, "100")
        seed(database.engine, args.large - 100, start=100, now=now)
        large_list = measure(client, lists(args.large), args.rounds, str(args.large))
        small_detail = measure(client, [f"/admin/workspaces/{small_id}"], args.rounds, "10 runs")
        large_detail = measure(client, [f"/admin/workspaces/{big_id}"], args.rounds, "1,000 runs")
        list_ratio = p95(large_list) / p95(small_list)
        detail_ratio = p95(large_detail) / p95(small_detail)
        print(
            f"workspaces list p95: {p95(small_list):.1f} ms at 100, {p95(large_list):.1f} ms at {args.large}"
        )
        print(
            f"workspace page p95: {p95(small_detail):.1f} ms (10 runs), {p95(large_detail):.1f} ms (1,000 runs)"
        )
        print(
            f"list_ratio={list_ratio:.2f} detail_ratio={detail_ratio:.2f} list_p95_ms={p95(large_list):.1f} "
            f"detail_p95_ms={p95(large_detail):.1f}"
        )
        database.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
