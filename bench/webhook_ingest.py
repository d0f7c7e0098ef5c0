"""Signed webhook deliveries per second, with structured logging and metrics on vs off, same run.

Run: ``.venv/bin/python bench/webhook_ingest.py [--deliveries 300] [--rounds 4]``

The web app (``create_app``, through Flask's test client: no network in the measure) receives
deliveries signed as Polar signs them (Standard Webhooks, a fresh ``webhook-id`` each), verifies and
records each one in a SQLite database in a temporary folder. Rounds alternate between
*observability on* (JSON log lines through the platform's structlog handler into a file, and
prometheus-client's metrics in multiprocess mode, files in a temporary directory) and *off* (no log
handler, the metrics replaced by no-ops), so both see the same database growth and machine noise.
The last line is ``key=value`` pairs: ``on_rps=``, ``off_rps=`` (medians) and ``ratio=`` (on / off).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
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

import structlog  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from standardwebhooks import Webhook  # noqa: E402

from app import create_app  # noqa: E402
from provisioning import db as db_module  # noqa: E402
from provisioning.config import Settings  # noqa: E402
from provisioning.integrations.models import IntegrationStatus, PolarIntegration  # noqa: E402
from provisioning.integrations.service import encrypt_secret  # noqa: E402
from provisioning.observability import logs, metrics  # noqa: E402
from tests.factories import make_owner  # noqa: E402
from tests.migrations_util import upgrade_to_head  # noqa: E402

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
METRIC_NAMES = ("WEBHOOKS_RECEIVED", "WEBHOOKS_REJECTED", "WEBHOOKS_RECORDED")


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


def signed(signer: Webhook, n: int) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "order.created",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"id": str(uuid.uuid4()), "amount": 1000 + n, "currency": "usd"},
    }
    body = json.dumps(payload).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }
    return body, headers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=300, help="per round")
    parser.add_argument("--rounds", type=int, default=4, help="per mode (on and off alternate)")
    args = parser.parse_args()

    engine = db_module.make_engine(f"sqlite:///{os.path.join(WORKDIR, 'bench.db')}")
    upgrade_to_head(engine)
    database = db_module.configure(db_module.Database(engine))
    settings = Settings(
        env="test",
        redis_url="redis://127.0.0.1:9/0",  # never used by a delivery
        token_encryption_keys=[Fernet.generate_key()],
        public_base_url="http://127.0.0.1:9",
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
        integration.webhook_secret = encrypt_secret(settings, integration, "webhook_secret", SECRET)
        path = f"/polar/webhooks/{integration.webhook_path_token}"
    app = create_app(settings, database=database)
    client = app.test_client()
    signer = Webhook(base64.b64encode(SECRET.encode()).decode())  # Polar's scheme: the whole secret's bytes
    log_path = os.path.join(WORKDIR, "bench.log")

    rates: dict[bool, list[float]] = {True: [], False: []}
    with open(log_path, "w") as log_file:
        # A warm-up round of each, unmeasured (first requests compile templates, fill caches).
        for on in (True, False):
            observability(on, log_file)
            for n in range(20):
                body, headers = signed(signer, n)
                assert client.post(path, data=body, headers=headers).status_code == 202
        for _ in range(args.rounds):
            for on in (False, True):
                observability(on, log_file)
                deliveries = [signed(signer, n) for n in range(args.deliveries)]
                started = time.perf_counter()
                for body, headers in deliveries:
                    response = client.post(path, data=body, headers=headers)
                    assert response.status_code == 202, response.get_data(as_text=True)
                rates[on].append(args.deliveries / (time.perf_counter() - started))
        observability(False, log_file)
    lines = Path(log_path).read_text().splitlines()
    assert lines and all(json.loads(line).get("request_id") for line in lines if "received for" in line)

    on_rps, off_rps = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"logging: JSON, {len(lines)} lines; metrics: multiprocess, {len(multiproc.files())} files")
    print("on  (deliveries/s):", ", ".join(f"{r:.0f}" for r in rates[True]))
    print("off (deliveries/s):", ", ".join(f"{r:.0f}" for r in rates[False]))
    print(
        f"on_rps={on_rps:.0f} off_rps={off_rps:.0f} ratio={on_rps / off_rps:.2f} deliveries={args.deliveries}"
    )


if __name__ == "__main__":
    main()
