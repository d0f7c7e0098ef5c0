"""The parts of ``make run`` that can be checked without starting processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app import devserver
from provisioning.config import parse_fernet_keys


def test_dev_secrets_are_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devserver, "INSTANCE", tmp_path / "instance")
    monkeypatch.setattr(devserver, "DEV_ENV", tmp_path / "instance" / "dev.env")
    first = devserver.load_dev_env()
    second = devserver.load_dev_env()
    assert first == second
    assert len(first["SECRET_KEY"]) >= 32
    Fernet(parse_fernet_keys(first["POLAR_TOKEN_ENCRYPTION_KEY"])[0])
    assert (tmp_path / "instance" / "dev.env").stat().st_mode & 0o077 == 0


def test_the_worker_is_the_projects_worker_entry_point() -> None:
    args = devserver.worker_args({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert args[-1].endswith("worker.py")


def test_redis_answers_is_false_when_nothing_listens() -> None:
    assert devserver.redis_answers("redis://127.0.0.1:1/0") is False
