"""What ``GET /readyz`` checks: the database answers and its migrations are at head, Redis answers,
and the configured encryption keys decrypt the database's key canary. Each check reports on its own
(never a secret: errors are named by their class), so an operator sees which one failed."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from provisioning.canary.service import KeyCheck, check_canary
from provisioning.config import ROOT, ConfigError, Settings
from provisioning.db import Database

MIGRATIONS_DIR = ROOT / "migrations"
REDIS_TIMEOUT = 1.0  # seconds: a readiness probe must answer quickly even when Redis does not


@dataclass
class Check:
    ok: bool
    detail: str = ""


@dataclass
class Readiness:
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not ready",
            "checks": {name: asdict(check) for name, check in self.checks.items()},
        }


@functools.cache
def migration_heads() -> frozenset[str]:
    """The revisions the code's migrations end at (read once per process)."""
    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def readiness(database: Database, settings: Settings) -> Readiness:
    result = Readiness()
    result.checks["database"], result.checks["migrations"] = _database(database)
    result.checks["redis"] = _redis(settings.redis_url)
    result.checks["keys"] = (
        _keys(database, settings)
        if result.checks["database"].ok
        else Check(False, "not checked: the database cannot be reached")
    )
    return result


def _database(database: Database) -> tuple[Check, Check]:
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(session.connection()).get_current_heads())
    except Exception as exc:  # any failure is "not ready", named by its class only (URLs carry passwords)
        reason = f"cannot be reached ({type(exc).__name__})"
        return Check(False, reason), Check(False, "not checked: the database cannot be reached")
    heads = migration_heads()
    if current == heads:
        return Check(True), Check(True, f"at head {', '.join(sorted(heads))}")
    shown = ", ".join(sorted(current)) or "none"
    return Check(True), Check(
        False, f"at {shown}, code expects {', '.join(sorted(heads))}: run flask db upgrade"
    )


def _redis(url: str) -> Check:
    try:
        conn = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        try:
            conn.ping()
        finally:
            conn.close()
    except (redis.RedisError, OSError) as exc:
        return Check(False, f"cannot be reached ({type(exc).__name__})")
    return Check(True)


def _keys(database: Database, settings: Settings) -> Check:
    try:
        outcome = check_canary(database, settings)
    except ConfigError as exc:
        return Check(False, str(exc))
    except Exception as exc:
        return Check(False, f"the key canary could not be read ({type(exc).__name__})")
    if outcome is KeyCheck.NOT_MIGRATED:
        return Check(False, "the key canary's table does not exist yet: run flask db upgrade")
    return Check(True, outcome.value)
