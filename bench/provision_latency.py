"""Time from the OAuth callback to ``ready`` with 100 ms added to every Polar call.

Run: ``.venv/bin/python bench/provision_latency.py [--latency-ms 100] [--rounds 3]``

The emulator runs in its own process with a ``latency_ms`` fault on every path, so each Polar
round trip costs at least that much. One round: a fresh workspace connects (real consent), then we
time ``complete_connect`` (code exchange, introspection, organization list) plus the provisioning
job run inline, until the integration is ``ready``. The lower bound is the chain of dependent round
trips the default catalog needs × latency:

    token exchange → introspect ∥ list organizations → the step's list calls (in parallel)
    → create meters → create benefits (meter credits need the meter id) → create products
    → attach benefits

A second figure runs provisioning again on the already-provisioned workspace: reads only.
Database: a SQLite file in a temporary folder (the zero-setup default).
The last line is ``key=value`` pairs: ``ratio=`` (wall time over the lower bound), ``calls=``,
``needed_calls=``, ``noop_ms=``, ``noop_calls=``, ``noop_writes=``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Logging and metrics on, as in production: metrics in prometheus-client's multiprocess mode (files
# in a temporary directory, set before prometheus-client is imported), JSON log lines to a file.
from provisioning.observability import multiproc  # noqa: E402

METRICS_DIR = tempfile.mkdtemp(prefix="connect-polar-bench-metrics-")
os.environ[multiproc.ENV] = METRICS_DIR
multiproc.prepare("bench")

from cryptography.fernet import Fernet  # noqa: E402
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI  # noqa: E402

from app.accounts.models import Membership, User, Workspace  # noqa: E402
from provisioning import db as db_module  # noqa: E402
from provisioning.catalog import load_catalog  # noqa: E402
from provisioning.config import DEFAULT_PLANS_FILE, Settings  # noqa: E402
from provisioning.connect.service import begin_connect, complete_connect  # noqa: E402
from provisioning.integrations.models import PolarIntegration  # noqa: E402
from provisioning.observability import logs  # noqa: E402
from provisioning.runs.jobs import provision  # noqa: E402
from provisioning.runs.models import ProvisioningRun  # noqa: E402
from tests.migrations_util import upgrade_to_head  # noqa: E402

WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "polar_emulator", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/.well-known/openid-configuration", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the emulator did not start")


def dependent_chain(catalog) -> int:
    """Round trips that must follow one another for a first provisioning of ``catalog``."""
    chain = 1 + 1 + 1  # token exchange; introspect ∥ organizations; the step's list calls
    chain += 1 if catalog.meters else 0
    chain += 1 if catalog.benefits else 0
    chain += 1  # products
    chain += 1 if any(plan.benefits for plan in catalog.plans) else 0
    return chain


def needed_calls(catalog) -> int:
    """Calls a first provisioning cannot do without: the OAuth leg, the account check (userinfo,
    beside the list calls), the lists, one create each."""
    oauth = 4  # token exchange; introspect, organizations and the account (userinfo), side by side
    lists = 1 + 4  # userinfo; meters, benefits, products, webhook endpoints
    creates = len(catalog.meters) + len(catalog.benefits) + len(catalog.plans) + 1
    attach = sum(1 for plan in catalog.plans if plan.benefits)
    return oauth + lists + creates + attach


def consent(authorize_url: str) -> tuple[str, str]:
    parsed = urlparse(authorize_url)
    form = [(k, v[0]) for k, v in parse_qs(parsed.query).items()]
    form += [("user", "demo@polar.local"), ("action", "allow")]
    response = httpx.post(
        f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    location = parse_qs(urlparse(response.headers["location"]).query)
    return location["code"][0], location["state"][0]


def api_calls(control: httpx.Client) -> list[dict]:
    return control.get("/_emulator/requests").json()


def one_round(database, settings, control: httpx.Client, latency_ms: float, n: int) -> dict[str, float]:
    control.post("/_emulator/reset").raise_for_status()
    with database.transaction() as session:
        user = User(email=f"owner{n}@bench.test", password_hash="x")
        workspace = Workspace(name=f"Bench {n}")
        session.add_all([user, workspace])
        session.flush()
        session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
        user_id, workspace_id = user.id, workspace.id
    with database.transaction() as session:
        start = begin_connect(session, settings, workspace_id=workspace_id, user_id=user_id)
    code, state = consent(start.authorize_url)

    control.post("/_emulator/faults", json={"path": "*", "latency_ms": latency_ms}).raise_for_status()
    control.delete("/_emulator/requests")
    began = time.perf_counter()
    with database.transaction() as session:
        integration = complete_connect(
            session, settings, state=state, code=code, user_id=user_id, browser_nonce=start.nonce
        )
        integration_id = integration.id
        run_id = session.query(ProvisioningRun.id).filter_by(integration_id=integration_id).scalar()
    result = provision(run_id, settings)
    wall = time.perf_counter() - began
    with database.transaction() as session:
        status = session.get(PolarIntegration, integration_id).status
    assert result["status"] == "succeeded" and status == "ready", (result, status)
    first = api_calls(control)

    # Again, on the provisioned workspace: reads only.
    control.delete("/_emulator/requests")
    with database.transaction() as session:
        from provisioning.runs.service import create_run

        again = create_run(session, session.get(PolarIntegration, integration_id), trigger="cli")
        again_id = again.id
    began = time.perf_counter()
    provision(again_id, settings)
    noop_wall = time.perf_counter() - began
    second = api_calls(control)
    control.delete("/_emulator/faults")
    return {
        "wall_ms": wall * 1000,
        "calls": len(first),
        "noop_ms": noop_wall * 1000,
        "noop_calls": len(second),
        "noop_writes": sum(
            1 for r in second if r["method"] in WRITE_METHODS and not r["path"].startswith("/v1/oauth2/")
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    log_file = open(os.path.join(METRICS_DIR, "bench.log"), "w")  # noqa: SIM115
    logs.configure("json", stream=log_file)
    catalog = load_catalog(DEFAULT_PLANS_FILE)
    chain = dependent_chain(catalog)
    lower_ms = chain * args.latency_ms
    proc, url = start_emulator()
    tmp = tempfile.mkdtemp(prefix="connect-polar-bench-")
    try:
        engine = db_module.make_engine(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
        upgrade_to_head(engine)
        database = db_module.configure(db_module.Database(engine))
        settings = Settings(
            env="test",
            polar_api_url=url,
            polar_web_url=url,
            polar_oauth_client_id=DEMO_CLIENT_ID,
            polar_oauth_client_secret=DEMO_CLIENT_SECRET,
            polar_oauth_redirect_uri=DEMO_REDIRECT_URI,
            public_base_url="http://127.0.0.1:9",
            redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            token_encryption_keys=[Fernet.generate_key()],
            # Polar's per-client budget (100 calls a minute in the sandbox) would defer the later
            # rounds' runs; the local Polar enforces no limit here.
            polar_rate_limit_per_minute=100_000,
        )
        with httpx.Client(base_url=url, timeout=30) as control:
            rounds = [one_round(database, settings, control, args.latency_ms, n) for n in range(args.rounds)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    log_file.close()
    print(
        f"logging: JSON, {len(Path(log_file.name).read_text().splitlines())} lines; metrics: multiprocess, "
        f"{len(multiproc.files())} files"
    )
    print("rounds (ms):", ", ".join(f"{r['wall_ms']:.0f}" for r in rounds))
    wall = statistics.median(r["wall_ms"] for r in rounds)
    noop = statistics.median(r["noop_ms"] for r in rounds)
    calls = max(r["calls"] for r in rounds)
    noop_calls = max(r["noop_calls"] for r in rounds)
    noop_writes = max(r["noop_writes"] for r in rounds)
    print(
        f"default catalog: {len(catalog.meters)} meters, {len(catalog.benefits)} benefits, {len(catalog.plans)} plans"
    )
    print(
        f"latency per Polar call: {args.latency_ms:.0f} ms; dependent chain: {chain} round trips = {lower_ms:.0f} ms"
    )
    print(
        f"callback → ready (median of {args.rounds}): {wall:.0f} ms, {calls} API calls (needed: {needed_calls(catalog)})"
    )
    print(f"second run, already provisioned: {noop:.0f} ms, {noop_calls} API calls, {noop_writes} writes")
    print(
        f"ratio={wall / lower_ms:.2f} wall_ms={wall:.0f} lower_bound_ms={lower_ms:.0f} chain={chain} "
        f"calls={calls} needed_calls={needed_calls(catalog)} noop_ms={noop:.0f} noop_calls={noop_calls} "
        f"noop_writes={noop_writes}"
    )


if __name__ == "__main__":
    main()
