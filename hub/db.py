"""The hub's database: engine, transactions, and the tables of the delivery machinery.

SQLite file by default (embedded), PostgreSQL in production and tests. Schema
changes go through Alembic (``hub db upgrade``); nothing here creates tables.

Tables:
- ``hub_processed_message``: which message each consumer has handled, written in
  the same transaction as the handler's effects (idempotent consumer);
- ``hub_outbox``: records to publish, written in that transaction too and relayed
  to Kafka afterwards (transactional outbox);
- ``hub_scheduled_retry``: messages whose handler failed transiently, redelivered
  when due without blocking their partition;
- ``hub_claim_check``: record values too large for a Kafka record, kept here while a
  small pointer record travels instead (hub/claimcheck.py), pruned after the retention
  of the topic the pointer is on (hub/retention.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

__all__ = [
    "ClaimCheckRecord",
    "OutboxRecord",
    "ProcessedMessage",
    "ProcessedOutcome",
    "ScheduledRetry",
    "create_db_engine",
    "is_postgres",
    "transaction",
]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UtcTimestamp = sa.DateTime(timezone=True)


class ProcessedOutcome(StrEnum):
    """What a consumer's marker in ``hub_processed_message`` says of a message."""

    DONE = "done"
    """Handled, its effects committed: a redelivery is a duplicate."""
    DEAD = "dead"
    """Dead-lettered: only a replay from the dead-letter topic is handled again."""
    RETRYING = "retrying"
    """A retry is scheduled: only that retry (or a replay) is handled again."""
    CLAIMED = "claimed"
    """An effect's outside call is under way (see ``Processor._claim_effect``)."""


class ProcessedMessage(SQLModel, table=True):
    __tablename__ = "hub_processed_message"

    consumer: str = Field(primary_key=True, max_length=100)
    message_id: str = Field(primary_key=True, max_length=200)
    outcome: str = Field(max_length=16, description="done | dead | retrying | claimed")
    processed_at: datetime = Field(sa_type=UtcTimestamp)


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "hub_outbox"
    # Ids are never reused (SQLite would reuse a deleted maximum): a late delete of a sent
    # record must never hit a newer one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True,
                                                             autoincrement=True))
    topic: str = Field(max_length=250)
    key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    value: bytes = Field(sa_type=sa.LargeBinary)
    headers: str = Field(sa_type=sa.Text, description="JSON [[name, value as Latin-1 text], ...]")
    created_at: datetime = Field(sa_type=UtcTimestamp)


class ScheduledRetry(SQLModel, table=True):
    __tablename__ = "hub_scheduled_retry"
    __table_args__ = (sa.UniqueConstraint("consumer", "message_id", name="uq_retry_message"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True,
                                                             autoincrement=True))
    consumer: str = Field(max_length=100, index=True)
    message_id: str = Field(max_length=200)
    topic: str = Field(max_length=250)
    partition: int
    offset: int
    key: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    value: bytes = Field(sa_type=sa.LargeBinary)
    headers: str = Field(sa_type=sa.Text)
    attempt: int
    due_at: datetime = Field(sa_type=UtcTimestamp, index=True)
    history: str = Field(sa_type=sa.Text, description="JSON list of earlier failures")


class ClaimCheckRecord(SQLModel, table=True):
    """A record value stored by reference: the record on ``topic`` carries only ``ref``."""

    __tablename__ = "hub_claim_check"

    ref: str = Field(primary_key=True, max_length=64)
    topic: str = Field(max_length=250, description="The topic of the pointer record.")
    value: bytes = Field(sa_type=sa.LargeBinary)
    size: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UtcTimestamp, index=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def json_text(value: Any) -> str:
    """JSON columns' serializer: orjson, so a value may hold an ``orjson.Fragment`` (JSON a
    pydantic model wrote once, see storage.bulk.json_of) and dicts write several times
    faster than with the standard library. Keys that are not strings become strings, as
    with ``json.dumps``."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        _private_sqlite_file(sa.make_url(url).database)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "connect", _binary_arrays)
    return engine


def _private_sqlite_file(database: str | None) -> None:
    """The database file 0600 in a directory made 0700 if missing (DAT-2); SQLite gives
    its -wal and -shm files the database file's mode."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    from connectors._shared.files import FILE_MODE, private_dir

    path = Path(database)
    if not path.parent.exists():
        private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    os.chmod(path, FILE_MODE)


def _binary_arrays(dbapi_conn: Any, _record: Any) -> None:
    """Lists go to PostgreSQL as binary arrays. A batch's look-ups bind arrays of thousands
    of values (storage.bulk); as text arrays psycopg would quote each value in Python
    (docs/performance.md)."""
    dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session in one transaction: committed on success, rolled back on error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
