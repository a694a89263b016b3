"""Throw-away PostgreSQL databases for benchmarks (one per run, migrated, dropped after)."""

from __future__ import annotations

import os
import uuid

import sqlalchemy as sa

from hub.db import create_db_engine
from hub.migrations import upgrade

PG = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+psycopg://hub@127.0.0.1:55432/hub_test")


def fresh_database() -> str:
    """A new, migrated database; its URL. template0 takes no connections, so parallel
    creates never collide on it."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}" template template0'))
    admin.dispose()
    url = sa.make_url(PG).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def drop_database(url: str) -> None:
    name = sa.make_url(url).database
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()
