"""Alembic migrations of the hub's database (``hub db upgrade``).

Several ``hub run`` processes started together each upgrade at start: on PostgreSQL the
upgrade holds a session-level advisory lock (:data:`MIGRATION_LOCK`), so they run one
after the other and the later ones find the schema at head. SQLite serialises writers
itself, and the hub runs as one process on it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

__all__ = ["current_revision", "upgrade"]

HERE = Path(__file__).resolve().parent

MIGRATION_LOCK = 0x6875625F6D6967
"""The advisory lock key held while migrating (the bytes of 'hub_mig')."""


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    if engine.dialect.name != "postgresql":
        command.upgrade(_config(engine), revision)
        return
    with engine.connect() as lock:
        lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        lock.commit()
        try:
            command.upgrade(_config(engine), revision)
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            lock.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
