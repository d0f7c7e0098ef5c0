"""Pooled PostgreSQL connections: one idle a while is checked before use, one used moments ago is
trusted (a database restart then fails one use, and the pool starts over)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from provisioning import db as db_module


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = db_module.make_engine(pg_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pg_url: str, pid: int) -> None:
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()


def test_an_idle_connection_whose_server_side_is_gone_is_replaced_before_use(
    engine: sa.Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(engine)
    _terminate(pg_url, first)
    monkeypatch.setattr(db_module, "PING_IF_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle

    assert _backend_pid(engine) != first  # no error: the ping found it gone and the pool reconnected


def test_a_connection_used_moments_ago_is_trusted_and_a_restart_fails_one_use(
    engine: sa.Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(engine)
    _terminate(pg_url, first)
    monkeypatch.setattr(db_module, "PING_IF_IDLE_SECONDS", 3600.0)

    with pytest.raises(sa.exc.OperationalError):
        _backend_pid(engine)  # not pinged: the use itself finds the connection gone
    assert _backend_pid(engine) != first  # the pool was invalidated: the next use reconnects
