"""Start-up that fails loudly, as the Procfile runs each process: gunicorn with ``gunicorn.conf.py``,
``python worker.py`` and ``flask --app wsgi``. A bad setting or wrong keys stop the process within
seconds, with one line naming the setting; right ones start it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from polar_emulator import EmulatorServer

from provisioning.canary.service import verify_keys
from provisioning.config import Settings
from provisioning.db import Database
from tests.committed import platform_env

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
FLASK = str(Path(sys.executable).parent / "flask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(
    committing_database: Database, pg_url: str, redis_url: str, emulator: EmulatorServer
) -> dict[str, str]:
    """A platform environment whose keys wrote this database's key canary."""
    environ = platform_env(pg_url=pg_url, redis_url=redis_url, polar_url=emulator.url)
    environ |= {"PORT": str(_free_port()), "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
    verify_keys(committing_database, Settings.from_env(environ))
    return environ


def _wrong_key(env: dict[str, str]) -> dict[str, str]:
    return {**env, "POLAR_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Configuration error:")]


def _gunicorn(env: dict[str, str], timeout: float = 10) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    result = subprocess.run(
        [GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - began


def test_gunicorn_with_a_wrong_key_stops_naming_the_setting(env: dict[str, str]) -> None:
    wrong = _wrong_key(env)
    result, took = _gunicorn(wrong)

    assert result.returncode != 0 and took < 10
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "POLAR_TOKEN_ENCRYPTION_KEY" in errors[0], result.stderr
    assert "Booting worker" not in result.stderr  # the master stopped before forking
    assert "Traceback" not in result.stderr
    assert wrong["POLAR_TOKEN_ENCRYPTION_KEY"] not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"APP_ENV": "prod"}, "APP_ENV"),
        ({"APP_ENV": "production", "SECRET_KEY": "weak"}, "SECRET_KEY"),
        ({"POLAR_TOKEN_ENCRYPTION_KEY": ""}, "POLAR_TOKEN_ENCRYPTION_KEY"),  # missing, with secrets stored
        ({"POLAR_TOKEN_ENCRYPTION_KEY": "not-a-key"}, "POLAR_TOKEN_ENCRYPTION_KEY"),
        ({"REDIS_URL": "localhost"}, "REDIS_URL"),
        ({"GUNICORN_THREADS": "many"}, "GUNICORN_THREADS"),
    ],
)
def test_gunicorn_stops_on_any_invalid_setting(
    env: dict[str, str], changes: dict[str, str], named: str
) -> None:
    result, took = _gunicorn({**env, **changes})

    assert result.returncode != 0 and took < 10
    errors = _errors(result.stderr)
    assert len(errors) == 1 and named in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_with_the_right_keys_serves(env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{env['PORT']}/login?next=/secret-query", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    logs = stdout + stderr
    access = [line for line in logs.splitlines() if '"GET /login HTTP/1.1" 200' in line]
    assert access and "secret-query" not in logs, logs  # the access log has no query strings


def test_the_worker_with_a_wrong_key_stops_naming_the_setting(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "worker.py", "--burst"],
        cwd=ROOT,
        env=_wrong_key(env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "POLAR_TOKEN_ENCRYPTION_KEY" in errors[0], result.stderr


def test_a_flask_command_with_a_wrong_key_stops_naming_the_setting(env: dict[str, str]) -> None:
    result = subprocess.run(
        [FLASK, "--app", "wsgi", "plans", "check"],
        cwd=ROOT,
        env=_wrong_key(env),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "POLAR_TOKEN_ENCRYPTION_KEY" in errors[0], result.stderr

    right = subprocess.run(
        [FLASK, "--app", "wsgi", "plans", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert right.returncode == 0, right.stderr


def test_rotated_keys_start_with_the_new_key_first_and_then_alone(
    env: dict[str, str], committing_database: Database
) -> None:
    new_key = Fernet.generate_key().decode()
    both = {**env, "POLAR_TOKEN_ENCRYPTION_KEY": f"{new_key},{env['POLAR_TOKEN_ENCRYPTION_KEY']}"}
    rotated = subprocess.run(
        [FLASK, "--app", "wsgi", "keys", "rotate"],
        cwd=ROOT,
        env=both,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    settings = Settings.from_env(env).model_copy(update={"token_encryption_keys": [new_key.encode()]})
    assert verify_keys(committing_database, settings).value == "verified"
