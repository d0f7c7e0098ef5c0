"""Build a schema for tests: Alembic migrations once they exist, else the models' metadata."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent


def upgrade_to_head(engine: sa.Engine) -> None:
    import app.accounts.models  # noqa: F401  (the web layer's tables share the metadata)
    import provisioning.models  # noqa: F401
    from provisioning.db import Base

    versions = ROOT / "migrations" / "versions"
    if versions.is_dir() and any(versions.glob("*.py")):
        from alembic import command
        from alembic.config import Config

        cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        return
    Base.metadata.create_all(engine)
