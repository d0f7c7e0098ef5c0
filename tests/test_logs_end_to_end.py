"""Structured logs hold no secret: the whole platform as it runs in production (web under gunicorn,
``python worker.py``, a ``flask`` command), driven through connect → provision → token refresh →
webhook deliveries, and every log sink (their stdout and stderr) searched for each secret the flow
handled: the OAuth code and state, the access and refresh tokens (before and after the refresh), the
client secret, the webhook secret and path token, the session cookie, the password and the keys.
The web's lines are JSON and carry request ids; the worker's carry the run and integration ids."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from polar_emulator import EmulatorServer

from provisioning.config import Settings
from provisioning.db import Database, utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from provisioning.integrations.service import decrypt_secret
from provisioning.runs.models import ProvisioningRun
from tests.app.polar.conftest import consent
from tests.committed import platform_env
from tests.factories import PASSWORD, make_owner

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = CSRF_RE.search(page.text)
    assert match, path
    return match.group(1)


def run(args: list[str], env: dict[str, str], sinks: dict[str, str], name: str) -> None:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    sinks[f"{name} stdout"] = result.stdout
    sinks[f"{name} stderr"] = result.stderr
    assert result.returncode == 0, result.stderr[-3000:]


def json_lines(text: str) -> list[dict]:
    """Every line as JSON, but for Python's warnings printed while modules were imported, before
    logging was configured (a library's deprecation notice and its source line)."""
    lines = text.splitlines()
    out = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        if re.match(r"^\S+\.py:\d+: \w*Warning: ", line) or (n and "Warning: " in lines[n - 1]):
            continue
        out.append(json.loads(line))
    return out


def secrets_of(database: Database, settings: Settings, integration_id: str) -> dict[str, str]:
    with database.transaction() as session:
        row = session.get(PolarIntegration, integration_id)
        assert row is not None and row.access_token and row.refresh_token and row.webhook_secret
        return {
            "access token": decrypt_secret(settings, row.id, "access_token", row.access_token),
            "refresh token": decrypt_secret(settings, row.id, "refresh_token", row.refresh_token),
            "webhook secret": decrypt_secret(settings, row.id, "webhook_secret", row.webhook_secret),
            "webhook path token": row.webhook_path_token,
            "access token ciphertext": row.access_token,
        }


def test_a_full_flow_logs_ids_and_no_secret(
    committing_database: Database,
    pg_url: str,
    redis_url: str,
    emulator: EmulatorServer,
    control: httpx.Client,
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    redirect_uri = f"{base_url}/polar/callback"
    registered = control.post(
        "/_emulator/clients", json={"name": "Connect Polar (log test)", "redirect_uris": [redirect_uri]}
    )
    registered.raise_for_status()
    client_id, client_secret = registered.json()["client_id"], registered.json()["client_secret"]
    env = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url, public_base_url=base_url)
    env |= {
        "POLAR_OAUTH_CLIENT_ID": client_id,
        "POLAR_OAUTH_CLIENT_SECRET": client_secret,
        "POLAR_OAUTH_REDIRECT_URI": redirect_uri,
        "LOG_FORMAT": "json",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "4",
        "PYTHONUNBUFFERED": "1",
    }
    settings = Settings.from_env(env)
    with committing_database.transaction() as session:
        owner = make_owner(session, "Log Test", email="owner@log-test.test", password=PASSWORD)
    email = "owner@log-test.test"
    sinks: dict[str, str] = {}
    canaries: dict[str, str] = {
        "client secret": client_secret,
        "SECRET_KEY": env["SECRET_KEY"],
        "POLAR_TOKEN_ENCRYPTION_KEY": env["POLAR_TOKEN_ENCRYPTION_KEY"],
        "password": PASSWORD,
    }

    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert web.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)

        browser = httpx.Client(base_url=base_url, timeout=30)
        login = browser.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf(browser, "/login")}
        )
        assert login.status_code == 303, login.text
        page = f"/workspaces/{owner.workspace_id}/polar"
        connect = browser.post(f"{page}/connect", data={"csrf_token": csrf(browser, page)})
        assert connect.status_code == 303, connect.text
        answer = consent(connect.headers["Location"])
        canaries["OAuth code"], canaries["OAuth state"] = answer.params["code"], answer.params["state"]
        callback = browser.get(answer.callback_path)
        assert callback.status_code in (302, 303), callback.text
        for cookie in browser.cookies.jar:
            canaries[f"cookie {cookie.name}"] = cookie.value or ""

        # The worker provisions; then the token is due, a flask command asks for another run, and the
        # worker refreshes it before provisioning again.
        run([sys.executable, "worker.py", "--burst"], env, sinks, "worker (provision)")
        with committing_database.transaction() as session:
            integration = session.scalar(
                sa.select(PolarIntegration).where(PolarIntegration.workspace_id == owner.workspace_id)
            )
            assert integration is not None and integration.status == IntegrationStatus.READY
            integration_id = integration.id
            first_run = session.scalar(
                sa.select(ProvisioningRun.id).where(ProvisioningRun.integration_id == integration_id)
            )
        before = secrets_of(committing_database, settings, integration_id)
        canaries |= {f"{k} (before the refresh)": v for k, v in before.items()}
        with committing_database.transaction() as session:
            row = session.get(PolarIntegration, integration_id)
            assert row is not None
            row.token_expires_at = utcnow() + timedelta(seconds=30)
        run(
            [str(BIN / "flask"), "--app", "wsgi", "provision", owner.workspace_id],
            env,
            sinks,
            "flask provision",
        )
        run([sys.executable, "worker.py", "--burst"], env, sinks, "worker (refresh)")
        after = secrets_of(committing_database, settings, integration_id)
        assert after["access token"] != before["access token"], "the token was not refreshed"
        canaries |= {f"{k} (after the refresh)": v for k, v in after.items()}

        # Polar's deliveries of a purchase reach the web and are recorded.
        with committing_database.transaction() as session:
            row = session.get(PolarIntegration, integration_id)
            assert row is not None
            org_id, endpoint_id = row.polar_org_id, row.webhook_endpoint_id
            product_id = row.product_mappings[0].polar_product_id
        bought = control.post(
            "/_emulator/simulate/purchase",
            json={"organization_id": org_id, "product_id": product_id, "external_customer_id": "log-test"},
        )
        assert bought.status_code == 201, bought.text
        deadline = time.monotonic() + 30
        while True:
            deliveries = control.get(
                "/_emulator/webhook-deliveries", params={"endpoint_id": endpoint_id}
            ).json()
            if any(d.get("http_code") == 202 for d in deliveries):
                break
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.1)
        browser.close()
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
        out, err = web.communicate(timeout=30)
        sinks["web stdout"], sinks["web stderr"] = out, err

    # No secret in any sink.
    for sink, text in sinks.items():
        for name, secret in canaries.items():
            assert secret and secret not in text, f"the {name} is in the {sink}"
        assert not re.search(r"[?&](code|state)=", text), sink

    # The web's lines are JSON; request lines carry the request id, the callback no query string.
    web_lines = json_lines(sinks["web stderr"])
    assert web_lines, sinks["web stderr"][-2000:]
    access = [line for line in web_lines if line.get("logger") == "gunicorn.access"]
    callbacks = [line for line in access if "/polar/callback" in line["event"]]
    assert len(callbacks) == 1, callbacks  # once: one handler renders each line
    assert all(re.search(r"request_id=[0-9a-f]{32}", line["event"]) for line in access)
    assert all(line.get("request_id") for line in access)
    received = [line for line in web_lines if "received for integration" in line["event"]]
    assert received and all(line.get("request_id") for line in received)
    # The worker's lines name the run and the integration.
    worker_lines = json_lines(sinks["worker (provision) stderr"])
    succeeded = [line for line in worker_lines if "succeeded" in line["event"] and line.get("run_id")]
    assert succeeded and succeeded[0]["run_id"] == first_run
    assert succeeded[0]["integration_id"] == integration_id
    refreshed = json_lines(sinks["worker (refresh) stderr"])
    assert any("refreshed the Polar token" in line["event"] for line in refreshed), refreshed
