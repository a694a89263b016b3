"""Shared fixtures: the real Kafka broker and both databases (SQLite file, PostgreSQL)."""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.db import create_db_engine
from hub.migrations import upgrade

# The tests run the hub on its embedded defaults (test PKI, SoftHSM2, loopback peers),
# which production refuses (hub/production.py); every hub process they start inherits it.
os.environ.setdefault("HUB_PROFILE", "test")

# pytest's faulthandler covers SIGSEGV, SIGABRT and the like, not SIGTRAP (a native
# breakpoint, as GLib's g_error raises): with this, such a crash names the Python frames.
faulthandler.register(signal.SIGTRAP, file=sys.stderr, all_threads=True, chain=True)

KAFKA = os.environ.get("HUB_TEST_KAFKA", "127.0.0.1:9092")
POSTGRES = os.environ.get("HUB_TEST_POSTGRES_URL",
                          "postgresql+psycopg://hub@127.0.0.1:55432/hub_test")


def _reachable(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    if not _reachable(KAFKA):
        pytest.fail(f"no Kafka broker at {KAFKA}: start it with `bash deploy/kafka.sh start` "
                    "(deploy/test.sh does this)")
    return KAFKA


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


def _fresh_postgres(name: str) -> tuple[str, Engine]:
    base = sa.make_url(POSTGRES)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # template0 takes no connections, so parallel creates never collide on it.
            conn.execute(sa.text(f'create database "{name}" template template0'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"no PostgreSQL at {base.host}:{base.port}: start it with "
                    f"`bash deploy/postgres.sh start` (deploy/test.sh does this): {exc}")
    finally:
        admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    return url, admin


def _drop_postgres(name: str) -> None:
    """Best effort: a test database left behind costs nothing, a failed teardown hides results."""
    admin = sa.create_engine(sa.make_url(POSTGRES), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    except sa.exc.DBAPIError as exc:
        warnings.warn(f"test database {name} not dropped: {exc}", stacklevel=1)
    finally:
        admin.dispose()


def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    name = f"t_{uuid.uuid4().hex[:12]}"
    url, _ = _fresh_postgres(name)
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        _drop_postgres(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, then a PostgreSQL database."""
    yield from _database(request.param, tmp_path)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (for what only a shared server can do)."""
    yield from _database("postgres", tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = create_db_engine(pg_url)
    yield eng
    eng.dispose()
