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
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import metrics
from hub.db import OutboxRecord, is_postgres
from hub.settings import Settings
from pipelines.bulk import any_of, insert_rows, is_postgres_session, next_ids
from schemas.envelope import Envelope, utc_now
from schemas.topics import TopicSpec
from schemas.wire import Headers, encode

__all__ = ["OutboxRelay", "PendingRecord", "dump_headers", "enqueue", "enqueue_raw",
           "insert_records", "load_headers", "record_row"]

log = logging.getLogger(__name__)
_PARSED = "headers_parsed"
"""A row of :func:`record_row` also keeps its headers as a list, not written: handed to the
relay with the committed record, they need no parsing back from their JSON text."""
_COLUMNS = ("topic", "key", "value", "headers")
RELAY_LOCK_KEY = 0x68_75_62_5F_6F_62  # "hub_ob": one relay leader per database


def dump_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    """Headers as JSON text; each value's bytes as Latin-1 characters (lossless, one to one)."""
    return orjson.dumps([(k, v.decode("latin-1")) for k, v in headers]).decode()


def load_headers(text: str) -> Headers:
    return [(k, v.encode("latin-1")) for k, v in orjson.loads(text)]


def record_row(topic: TopicSpec | str, envelope: Envelope[Any], now: datetime) -> dict[str, Any]:
    """The outbox row of ``envelope`` (for :func:`insert_records`)."""
    key, value, headers = encode(envelope)
    return {"topic": topic if isinstance(topic, str) else topic.name, "key": key,
            "value": value, "headers": dump_headers(headers), "created_at": now,
            _PARSED: headers}


def insert_records(session: Session, rows: list[dict[str, Any]]) -> list[PendingRecord]:
    """Insert outbox rows in one statement; the ids come back for `OutboxRelay.dispatch`.

    Call it last before the commit: the rows' ``created_at`` is the wall clock now, not
    the handler's time. The orphan poll takes only rows older than
    ``outbox_orphan_age_s``; stamped with the start of a batch that took longer than that,
    a row was old enough the moment it was committed, and the poll could send it before
    the process that wrote it did: the record twice on its topic.
    """
    if not rows:
        return []
    table = OutboxRecord.__table__  # type: ignore[attr-defined]
    written = utc_now()
    if is_postgres_session(session):
        # Ids from the sequence, ascending in row order, then one COPY (pipelines.bulk).
        ids = next_ids(session, table, len(rows))
        insert_rows(session, table, [
            {"id": i, **{c: r[c] for c in _COLUMNS}, "created_at": written}
            for i, r in zip(ids, rows, strict=True)])
    else:
        ids = list(session.execute(sa.insert(table).returning(
            table.c.id, sort_by_parameter_order=True),
            [{**{c: r[c] for c in _COLUMNS}, "created_at": written} for r in rows]).scalars())
    return [PendingRecord(i, r["topic"], r["key"], r["value"], r.get(_PARSED) or r["headers"])
            for i, r in zip(ids, rows, strict=True)]


def enqueue(session: Session, topic: TopicSpec | str, envelope: Envelope[Any]) -> None:
    """Publish ``envelope`` when (and only if) ``session``'s transaction commits."""
    key, value, headers = encode(envelope)
    enqueue_raw(session, topic, key=key, value=value, headers=headers)


def enqueue_raw(session: Session, topic: TopicSpec | str, *, key: bytes | None, value: bytes,
                headers: Headers) -> None:
    name = topic if isinstance(topic, str) else topic.name
    session.add(OutboxRecord(topic=name, key=key, value=value, headers=dump_headers(headers),
                             created_at=utc_now()))


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A committed outbox row, handed to the relay by the process that wrote it."""

    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | str
    """As written (a list), or as stored (JSON text, :func:`dump_headers`)."""

    def header_list(self) -> Headers:
        return self.headers if isinstance(self.headers, list) else load_headers(self.headers)


class OutboxRelay:
    """Moves committed outbox records to Kafka, then deletes them.

    Two ways in: a consumer hands over what it has just committed (:meth:`dispatch`), so
    its events leave at once; and a poll of the table takes what nobody handed over
    (writes of the gateway or of jobs, rows left by a crashed process). Only rows older
    than ``outbox_orphan_age_s`` are polled, so that the poll never races the process
    sending its own rows; on PostgreSQL only the leader polls. Deletes run behind the sends,
    without waiting for the disk: a lost delete only means a repeat, which consumers drop.
    """

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._wake = asyncio.Event()
        self._deletable = asyncio.Event()
        self._stopping = asyncio.Event()
        self._queue: list[PendingRecord] = []
        self._inflight: set[int] = set()
        self._deleted: tuple[set[int], set[int]] = (set(), set())
        """Ids deleted lately (two generations), so a poll that read them just before
        their delete does not send them again."""
        self._deleted_at = time.monotonic()
        self._sent: list[int] = []
        self._sending_over = False
        """Set by run() once it sends no more: the deleter may end when nothing is left."""
        self._producer: AIOKafkaProducer | None = None
        self._waiting_since: float | None = None
        self._partitioner = DefaultPartitioner()
        self._lock_conn: sa.Connection | None = None
        self._lock_checked = 0.0
        self._polled_at = 0.0
        self.published = 0

    def dispatch(self, records: Sequence[PendingRecord]) -> None:
        """Send these committed records soon (call from the event loop)."""
        if records:
            self._queue.extend(records)
            self._inflight.update(r.id for r in records)
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self._producer = await self._start_producer()
        deleter = asyncio.create_task(self._delete_loop(), name="outbox-deleter")
        try:
            while True:
                if self._queue:
                    batch, self._queue = self._queue, []
                elif self._stopping.is_set():
                    break
                else:
                    batch = await self._poll()
                    if not batch:
                        await self._sleep(self._settings.outbox_poll_interval_s)
                        continue
                await self._send_until_acknowledged(batch)
        finally:
            self._stopping.set()
            self._sending_over = True
            self._deletable.set()
            await deleter
            if self._producer is not None:
                await self._producer.stop()
            await asyncio.to_thread(self._release_leadership)

    def unacknowledged_for(self) -> float:
        """Seconds the records being sent have waited for the brokers' acknowledgement (0
        when nothing waits): long only while Kafka cannot take them (readiness)."""
        since = self._waiting_since
        return 0.0 if since is None else time.monotonic() - since

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self._settings.kafka.aiokafka_kwargs(),
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _send_until_acknowledged(self, batch: list[PendingRecord]) -> None:
        """Send ``batch``; while Kafka refuses it (brokers down, too few in-sync replicas,
        timeouts), send it again after a backoff, on a new producer (a new idempotence
        session: the old one's sequence numbers are spoilt by the records it gave up on).
        Records written before a failure are written again, and consumers drop the repeats
        by message id. While stopping, a failure ends the sending: the rows stay in the
        outbox, and the next process's poll sends them."""
        self._waiting_since = time.monotonic()
        backoff = 0.5
        try:
            while True:
                try:
                    if self._producer is None:
                        self._producer = await self._start_producer()
                    await self._send(batch)
                    return
                except KafkaError as exc:
                    stopping = self._stopping.is_set()
                    log.warning("outbox relay: Kafka did not acknowledge %d records (%s); %s",
                                len(batch), type(exc).__name__,
                                "left in the outbox for the next process" if stopping
                                else f"sending them again in {backoff:g} s")
                    producer, self._producer = self._producer, None
                    if producer is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(producer.stop(), 10)
                    if stopping:
                        self._queue = []
                        return
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            self._waiting_since = None

    async def stop(self) -> None:
        """Send what was handed over, delete what was sent, then stop."""
        self._stopping.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _send(self, batch: list[PendingRecord]) -> None:
        """Send ``batch`` in order, one record batch per partition filled at a time.

        Records go into the producer's batch builders directly instead of one ``send()``
        each (a future, a partitioner call and an accumulator look-up per record: about
        half of the relay's CPU); the partition is the one ``send()`` would choose (the
        default partitioner: murmur2 of the key, the same as Kafka's Java clients), once per
        key. Order within a partition is kept: its batches are queued in turn."""
        producer = self._producer
        assert producer is not None
        futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], Any] = {}
        chosen: dict[tuple[str, bytes | None], int] = {}
        partitions: dict[str, list[int]] = {}
        for r in batch:
            part = chosen.get((r.topic, r.key))
            if part is None:
                if r.topic not in partitions:
                    partitions[r.topic] = sorted(await producer.partitions_for(r.topic))
                part = int(self._partitioner(r.key, partitions[r.topic], partitions[r.topic]))
                if r.key is not None:
                    chosen[(r.topic, r.key)] = part
            builder = open_batches.get((r.topic, part))
            headers = r.header_list()
            if builder is not None and builder.append(
                    key=r.key, value=r.value, timestamp=None, headers=headers) is not None:
                continue
            if builder is not None:  # full: queue it, start the next one
                futures.append(await producer.send_batch(builder, r.topic, partition=part))
            builder = producer.create_batch()
            if builder.append(key=r.key, value=r.value, timestamp=None,
                              headers=headers) is None:  # larger than a batch on its own
                open_batches.pop((r.topic, part), None)
                futures.append(await producer.send(r.topic, value=r.value, key=r.key,
                                                   partition=part, headers=headers))
                continue
            open_batches[(r.topic, part)] = builder
        for (topic, part), builder in open_batches.items():
            futures.append(await producer.send_batch(builder, topic, partition=part))
        await asyncio.gather(*futures)
        self._sent.extend(r.id for r in batch)
        self._deletable.set()
        self.published += len(batch)
        metrics.OUTBOX_PUBLISHED.inc(len(batch))

    async def _poll(self) -> list[PendingRecord]:
        now = time.monotonic()
        if now - self._polled_at < self._settings.outbox_poll_interval_s:
            return []
        self._polled_at = now
        if not await asyncio.to_thread(self._hold_leadership):
            return []
        # The ids first: under load most old-enough rows are this process's own, in flight
        # or just deleted, and reading their values only to drop them cost a core's share.
        ids = await asyncio.to_thread(self._fetch_ids)
        recent, older = self._deleted
        fresh = [i for i in ids
                 if i not in self._inflight and i not in recent and i not in older]
        metrics.OUTBOX_PENDING.set(len(ids))
        if not fresh:
            return []
        self._inflight.update(fresh)
        rows = await asyncio.to_thread(self._fetch, fresh)
        self._inflight.difference_update(set(fresh) - {r.id for r in rows})  # deleted meanwhile
        return rows

    async def _delete_loop(self) -> None:
        """Delete what was sent, behind the sends; once they are over, return when nothing
        is left.

        What is left is looked at before each wait, never only after one: a wake-up that
        came during a delete (the stop's among them) must not be the only sign of work.
        Before, the stop's wake-up could be spent on deleting a last send, and the loop then
        waited for ever (the hub ignored SIGTERM: the registration benchmark, 2 runs in 5).
        """
        while True:
            if not self._sent:
                if self._sending_over:
                    return
                await self._deletable.wait()
                self._deletable.clear()
                continue
            ids, self._sent = self._sent, []
            await asyncio.to_thread(self._delete, ids)
            self._remember_deleted(ids)
            self._inflight.difference_update(ids)

    def _remember_deleted(self, ids: list[int]) -> None:
        now = time.monotonic()
        if now - self._deleted_at > 30.0:
            self._deleted = (set(), self._deleted[0])
            self._deleted_at = now
        self._deleted[0].update(ids)

    def _fetch_ids(self) -> list[int]:
        """Ids of the rows old enough to be orphans (``outbox_orphan_age_s``), oldest first."""
        table = OutboxRecord.__table__  # type: ignore[attr-defined]
        cutoff = utc_now() - timedelta(seconds=self._settings.outbox_orphan_age_s)
        query = (sa.select(table.c.id).where(table.c.created_at <= cutoff).order_by(table.c.id)
                 .limit(self._settings.outbox_batch + len(self._inflight)))
        with self._engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def _fetch(self, ids: list[int]) -> list[PendingRecord]:
        table = OutboxRecord.__table__  # type: ignore[attr-defined]
        with Session(self._engine) as session:
            query = sa.select(table.c.id, table.c.topic, table.c.key, table.c.value,
                              table.c.headers).where(any_of(session, table.c.id, ids))
            return [PendingRecord(*row) for row in session.execute(query.order_by(table.c.id))]

    def _delete(self, ids: list[int]) -> None:
        table = OutboxRecord.__table__  # type: ignore[attr-defined]
        with Session(self._engine) as session, session.begin():
            if is_postgres(self._engine):
                session.execute(sa.text("set local synchronous_commit = off"))
            session.execute(sa.delete(table).where(any_of(session, table.c.id, ids)))

    def _hold_leadership(self) -> bool:
        if not is_postgres(self._engine):
            return True
        if self._lock_conn is not None:
            if time.monotonic() - self._lock_checked < 1.0:
                return True
            try:
                self._lock_conn.execute(sa.text("select 1"))
                self._lock_checked = time.monotonic()
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
