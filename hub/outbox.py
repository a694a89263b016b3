"""Transactional outbox: publish exactly what the database committed.

A handler's events are written to ``hub_outbox`` in the transaction that changes
state and marks the message processed. The :class:`OutboxRelay` then sends them
to Kafka (idempotent producer, acks=all) and deletes them once the broker has
acknowledged. A crash between send and delete sends a record twice at most; the
message id in it lets every consumer drop the repeat. On PostgreSQL one relay
at a time holds an advisory lock, so records leave in the order they were written.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import metrics
from hub.db import OutboxRecord, is_postgres
from hub.settings import Settings
from schemas.envelope import Envelope, utc_now
from schemas.topics import TopicSpec
from schemas.wire import Headers, encode

__all__ = ["OutboxRelay", "dump_headers", "enqueue", "enqueue_raw", "load_headers"]

log = logging.getLogger(__name__)
RELAY_LOCK_KEY = 0x68_75_62_5F_6F_62  # "hub_ob": one relay leader per database


def dump_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def load_headers(text: str) -> Headers:
    return [(k, base64.b64decode(v)) for k, v in json.loads(text)]


def enqueue(session: Session, topic: TopicSpec | str, envelope: Envelope[Any]) -> None:
    """Publish ``envelope`` when (and only if) ``session``'s transaction commits."""
    key, value, headers = encode(envelope)
    enqueue_raw(session, topic, key=key, value=value, headers=headers)


def enqueue_raw(session: Session, topic: TopicSpec | str, *, key: bytes | None, value: bytes,
                headers: Headers) -> None:
    name = topic if isinstance(topic, str) else topic.name
    session.add(OutboxRecord(topic=name, key=key, value=value, headers=dump_headers(headers),
                             created_at=utc_now()))


class OutboxRelay:
    """Moves committed outbox records to Kafka. Wake it after a commit for low latency."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._lock_conn: sa.Connection | None = None
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            **self._settings.kafka.aiokafka_kwargs(),
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
        )
        await producer.start()
        self._producer = producer
        try:
            while not self._stopping.is_set():
                if not await asyncio.to_thread(self._hold_leadership):
                    await self._sleep(2.0)
                    continue
                sent = await self._relay_once()
                if sent == 0:
                    await self._sleep(self._settings.outbox_poll_interval_s)
        finally:
            await producer.stop()
            await asyncio.to_thread(self._release_leadership)

    async def stop(self) -> None:
        """Stop after the batch in flight; what is left waits in the table for the next start."""
        self._stopping.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _relay_once(self) -> int:
        rows = await asyncio.to_thread(self._fetch)
        if not rows:
            metrics.OUTBOX_PENDING.set(0)
            return 0
        assert self._producer is not None
        futures = [
            await self._producer.send(r.topic, value=r.value, key=r.key,
                                      headers=load_headers(r.headers))
            for r in rows
        ]
        await asyncio.gather(*futures)
        await asyncio.to_thread(self._delete, [r.id for r in rows])
        self.published += len(rows)
        metrics.OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    def _fetch(self) -> list[Any]:
        table = OutboxRecord.__table__  # type: ignore[attr-defined]
        query = sa.select(table).order_by(table.c.id).limit(self._settings.outbox_batch)
        with self._engine.connect() as conn:
            return list(conn.execute(query))

    def _delete(self, ids: list[int]) -> None:
        table = OutboxRecord.__table__  # type: ignore[attr-defined]
        with self._engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.id.in_(ids)))

    def _hold_leadership(self) -> bool:
        if not is_postgres(self._engine):
            return True
        if self._lock_conn is not None:
            try:
                self._lock_conn.execute(sa.text("select 1"))
                return True
            except sa.exc.DBAPIError:
                self._release_leadership()
        conn = self._engine.connect()
        got = conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY})
        if got.scalar():
            conn.commit()
            self._lock_conn = conn
            log.info("outbox relay: leader")
            return True
        conn.close()
        return False

    def _release_leadership(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._lock_conn.close()
            self._lock_conn = None
