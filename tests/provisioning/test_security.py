"""Secrets at rest and in logs, token refresh, and the domain's independence from Flask."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from provisioning.db import utcnow
from provisioning.integrations.service import access_token, refresh_token
from provisioning.polar.oauth import PolarOAuth
from provisioning.runs.jobs import provision
from provisioning.runs.service import create_run

SERVER_SIDE = (
    "polar_emulator",
    "uvicorn",
    "authlib.oauth2.rfc6749.grants",
    "authlib.oauth2.rfc6749.authorization_server",
)
ROOT = Path(__file__).resolve().parents[2]


def _dump(session) -> str:
    rows = []
    for table in (
        "polar_integration",
        "polar_product_mapping",
        "provisioning_run",
        "provisioning_step",
        "polar_connect_attempt",
    ):
        rows += [str(r) for r in session.execute(sa.text(f"SELECT * FROM {table}")).all()]
    return "\n".join(rows)


def test_tokens_and_secret_never_stored_or_logged_in_plaintext(session, settings, connect, control, caplog):
    caplog.set_level(logging.DEBUG)
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == "succeeded"
    session.expire_all()
    integration = connected.integration
    secrets = [access_token(settings, integration), refresh_token(settings, integration)]
    endpoint = control.get(
        "/v1/webhooks/endpoints", headers={"Authorization": f"Bearer {secrets[0]}"}
    ).json()["items"][0]
    secrets.append(endpoint["secret"])

    dump = _dump(session)
    for secret in secrets:
        assert secret and secret not in dump
        # The emulator's OAuth server (Authlib's server side) runs in this process and logs
        # tokens at DEBUG; it stands in for Polar, so its records are not ours to judge.
        leaking = {
            r.name for r in caplog.records if secret in r.getMessage() and not r.name.startswith(SERVER_SIDE)
        }
        assert not leaking, leaking
    assert "polar_at_" not in dump and "polar_rt_" not in dump and "whsec_" not in dump


def test_expiring_token_is_refreshed_before_provisioning(session, settings, connect):
    connected = connect()
    integration = connected.integration
    old = access_token(settings, integration)
    integration.token_expires_at = utcnow() + timedelta(minutes=2)
    session.commit()

    assert provision(connected.run.id, settings)["status"] == "succeeded"
    session.expire_all()
    assert access_token(settings, integration) != old
    assert integration.token_expires_at > utcnow() + timedelta(minutes=30)
    assert PolarOAuth(settings.polar()).introspect(old).active is False  # rotation killed the old pair


def test_invalid_grant_on_refresh_means_reconnect(session, settings, connect):
    connected = connect()
    integration = connected.integration
    PolarOAuth(settings.polar()).revoke(refresh_token(settings, integration))
    integration.token_expires_at = utcnow() + timedelta(minutes=1)
    session.commit()

    result = provision(connected.run.id, settings)

    assert result["status"] == "failed"
    session.expire_all()
    assert integration.status == "needs_reconnect"
    assert "reconnect Polar" in integration.last_error
    second = create_run(session, integration, trigger="admin")
    session.commit()
    assert provision(second.id, settings)["status"] == "failed"


def test_provisioning_never_imports_flask():
    code = (
        "import pkgutil, importlib, sys, provisioning\n"
        "for m in pkgutil.walk_packages(provisioning.__path__, 'provisioning.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'flask' not in sys.modules, [k for k in sys.modules if k.startswith('flask')]\n"
        "assert not any(k == 'app' or k.startswith('app.') for k in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
