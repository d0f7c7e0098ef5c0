"""``/healthz``, ``/readyz`` and ``/metrics`` on the test database, this process's Redis and the local
Polar: readiness follows Redis going away and coming back, the metrics show a real provision, and
``/metrics`` is refused without its token."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.accounts.models import Workspace
from provisioning.canary.service import verify_keys
from provisioning.config import Settings
from provisioning.db import Database
from tests.app.conftest import make_app
from tests.app.polar.conftest import consent, run_jobs, start_connect

TOKEN = "metrics-token-" + "k" * 24


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: FlaskClient) -> dict:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.get_data(as_text=True))


@pytest.fixture
def keyed(database: Database, settings: Settings) -> Settings:
    """The key canary written, as the first start with keys does."""
    verify_keys(database, settings)
    return settings


def client_for(settings: Settings, database: Database, **changes: object) -> FlaskClient:
    return make_app(settings.model_copy(update=changes), database).test_client()


def test_healthz_answers_json_without_signing_in(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_200_with_every_check_passing(keyed: Settings, database: Database) -> None:
    response = client_for(keyed, database).get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "redis", "keys"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["keys"]["detail"] == "verified"
    assert body["checks"]["migrations"]["detail"].startswith("at head")


def test_readyz_is_503_when_redis_does_not_answer(keyed: Settings, database: Database) -> None:
    started = time.monotonic()
    response = client_for(keyed, database, redis_url="redis://127.0.0.1:1/0").get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] and body["checks"]["keys"]["ok"]
    assert time.monotonic() - started < 5


def test_readyz_is_503_with_keys_that_do_not_decrypt_the_canary(keyed: Settings, database: Database) -> None:
    other = [Fernet.generate_key()]
    response = client_for(keyed, database, token_encryption_keys=other).get("/readyz")
    assert response.status_code == 503
    keys = response.get_json()["checks"]["keys"]
    assert keys["ok"] is False and "POLAR_TOKEN_ENCRYPTION_KEY" in keys["detail"]


class OwnRedis:
    """A redis-server this test starts, stops and starts again itself, on one Unix socket."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed"
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="connect-polar-readyz-"))
        self.socket = self.workdir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", "0", "--unixsocket", str(self.socket)]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.01)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def test_readyz_follows_redis_stopping_and_coming_back(
    keyed: Settings, database: Database, own_redis: OwnRedis
) -> None:
    client = client_for(keyed, database, redis_url=own_redis.url)
    assert client.get("/readyz").status_code == 200

    own_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] and body["checks"]["keys"]["ok"]

    own_redis.start()
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()


def test_metrics_require_the_bearer_token(settings: Settings, database: Database) -> None:
    client = client_for(settings, database, metrics_token=TOKEN)
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_without_a_token_metrics_are_for_loopback_clients_only(
    settings: Settings, database: Database
) -> None:
    client = client_for(settings, database)
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 403


def test_metrics_show_a_provision(
    settings: Settings, database: Database, redis_url: str, owner_client: FlaskClient, workspace: Workspace
) -> None:
    client = owner_client
    client.application.extensions["connect_polar.settings"] = settings.model_copy(
        update={"metrics_token": TOKEN}
    )
    before = scrape(client)

    answer = consent(start_connect(client, workspace.id))
    assert client.get(answer.callback_path).status_code in (302, 303)
    queued = scrape(client)
    assert value(queued, "connect_polar_queue_depth") == 1
    assert value(queued, "connect_polar_oldest_queued_run_age_seconds") >= 0
    assert value(queued, "connect_polar_queue_readable") == 1
    run_jobs(redis_url, settings)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("connect_polar_provisioning_runs_total", outcome="succeeded") == 1
    assert delta("connect_polar_provisioning_run_duration_seconds_count", outcome="succeeded") == 1
    assert delta("connect_polar_polar_calls_total", operation="products.list", status="ok") >= 1
    assert delta("connect_polar_polar_calls_total", operation="products.create", status="ok") == 4
    assert (
        delta(
            "connect_polar_provisioning_step_duration_seconds_count",
            step="ensure_products",
            status="succeeded",
        )
        == 1
    )
    assert value(after, "connect_polar_queue_depth") == 0
    assert value(after, "connect_polar_oldest_queued_run_age_seconds") == 0
