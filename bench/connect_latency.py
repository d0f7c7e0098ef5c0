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
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import READY_TIMEOUT, Stack, consent, sign_up, start_connect  # noqa: E402

POLL_SECONDS = 0.003


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
