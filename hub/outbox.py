"""Transactional outbox: publish exactly what the database committed.

A handler's events are written to ``hub_outbox`` in the transaction that changes
state and marks the message processed. The :class:`OutboxRelay` then sends them
to Kafka (idempotent producer, acks=all) and deletes them once the broker has
acknowledged. A crash between send and delete sends a record twice at most; the
message id in it lets every consumer drop the repeat. On PostgreSQL one relay
at a time holds an advisory lock, so records leave in the order they were written.

A row's size is checked before it is queued and again before it is sent: a record
larger than ``KafkaSettings.max_record_bytes`` travels by reference (hub/claimcheck.py).
Kafka and database errors never end the relay: the records of a topic whose send
failed wait with exponential backoff and jitter (the other topics keep flowing, a
topic's order is kept), the producer is made anew, and the poll and the deletes are
tried again the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import claimcheck, metrics, tracing
from hub.claimcheck import check_in, record_size
from hub.db import OutboxRecord, is_postgres, transaction
from hub.settings import Settings
from schemas.envelope import Envelope, utc_now
from schemas.topics import TopicSpec
from schemas.wire import Headers, encode
from storage.bulk import any_of, insert_rows, is_postgres_session, next_ids

__all__ = ["OutboxRelay", "PendingRecord", "backoff_delay", "dump_headers", "enqueue",
           "enqueue_raw", "insert_records", "load_headers", "record_row"]

log = logging.getLogger(__name__)
_PARSED = "headers_parsed"
"""A row of :func:`record_row` also keeps its headers as a list, not written: handed to the
relay with the committed record, they need no parsing back from their JSON text."""
_COLUMNS = ("topic", "key", "value", "headers")
RELAY_LOCK_KEY = 0x68_75_62_5F_6F_62  # "hub_ob": one relay leader per database
LEADER_RETRY_S = 1.0
"""How often a relay that is not the leader tries for the lock (and the leader checks its
connection): every process polls, but only one may take orphans, so the others need not
ask at every poll; a leader that died is replaced within this long."""
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


def backoff_delay(failures: int, rng: random.Random | None = None) -> float:
    """The wait after ``failures`` failures in a row: exponential from 0.5 s up to 30 s,
    jittered to between half and all of it (processes that failed together do not come
    back together)."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return float(ceiling * (rng or random).uniform(0.5, 1.0))


def dump_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    """Headers as JSON text; each value's bytes as Latin-1 characters (lossless, one to one)."""
    return orjson.dumps([(k, v.decode("latin-1")) for k, v in headers]).decode()


def load_headers(text: str) -> Headers:
    return [(k, v.encode("latin-1")) for k, v in orjson.loads(text)]


def record_row(topic: TopicSpec | str, envelope: Envelope[Any], now: datetime) -> dict[str, Any]:
    """The outbox row of ``envelope`` (for :func:`insert_records`)."""
    key, value, headers = encode(envelope)
    name = topic if isinstance(topic, str) else topic.name
    tracing.inject(headers, name)
    return {"topic": name, "key": key, "value": value, "headers": dump_headers(headers),
            "created_at": now, _PARSED: headers}


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
    _check_sizes(session, rows, written)
    if is_postgres_session(session):
        # Ids from the sequence, ascending in row order, then one COPY (storage.bulk).
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


def _check_sizes(session: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    """Rows too large for a Kafka record get their value stored by reference."""
    limit = claimcheck.max_record_bytes()
    for row in rows:
        value, key = row["value"], row["key"]
        if len(value) + len(key or b"") + len(row["headers"]) + 1024 <= limit:
            continue  # the JSON text of the headers is longer than their bytes
        headers = row.get(_PARSED) or load_headers(row["headers"])
        if record_size(key, value, headers) <= limit:
            continue
        row["value"], pointer_headers = check_in(session, row["topic"], key=key, value=value,
                                                  headers=headers, now=now)
        row["headers"] = dump_headers(pointer_headers)
        row[_PARSED] = pointer_headers


def enqueue(session: Session, topic: TopicSpec | str, envelope: Envelope[Any]) -> None:
    """Publish ``envelope`` when (and only if) ``session``'s transaction commits."""
    key, value, headers = encode(envelope)
    tracing.inject(headers, topic if isinstance(topic, str) else topic.name)
    enqueue_raw(session, topic, key=key, value=value, headers=headers)


def enqueue_raw(session: Session, topic: TopicSpec | str, *, key: bytes | None, value: bytes,
                headers: Headers) -> None:
    name = topic if isinstance(topic, str) else topic.name
    if record_size(key, value, headers) > claimcheck.max_record_bytes():
        value, headers = check_in(session, name, key=key, value=value, headers=headers,
                                  now=utc_now())
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

    def __init__(self, settings: Settings, engine: Engine, *,
                 rng: random.Random | None = None,
                 producer_factory: Callable[..., Any] = AIOKafkaProducer) -> None:
        self._settings = settings
        self._producer_factory = producer_factory
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
        self._partitioner = DefaultPartitioner()
        self._lock_conn: sa.Connection | None = None
        self._lock_checked = 0.0
        self._lock_tried = float("-inf")
        self._polled_at = 0.0
        self._deleter: asyncio.Task[None] | None = None
        self._runs = 0
        self._rng = rng or random.Random()
        self._held: list[PendingRecord] = []
        """Records of topics whose send failed, in order, tried again at ``_held_until``."""
        self._held_topics: set[str] = set()
        self._held_until = 0.0
        self._send_failures = 0
        """Failed sends in a row (the backoff's exponent); 0 after a send that went through."""
        self._db_failures = 0
        self._max_record = settings.kafka.max_record_bytes
        self.healthy = True
        """False while sends or the poll fail (``/readyz``)."""
        self._waiting_since: float | None = None
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
        """Send until :meth:`stop`. Kafka and database errors are waited out, never raised;
        should something else end it, calling it again carries on with what was handed
        over (``hub run`` supervises it)."""
        if self._runs:
            # A run ended by surprise: what it had taken (a batch in its hands) is no longer
            # in flight, so the poll finds those rows again.
            self._inflight = ({r.id for r in self._queue} | {r.id for r in self._held}
                              | set(self._sent))
        self._runs += 1
        if self._deleter is None or self._deleter.done():
            self._deleter = asyncio.create_task(self._delete_loop(), name="outbox-deleter")
        finished = False
        try:
            while not self._stopping.is_set():
                if self._producer is None and not await self._connect():
                    continue
                batch = self._take_ready()
                if not batch:
                    batch = self._admit(await self._poll())
                if not batch:
                    await self._sleep(self._idle_wait())
                    continue
                await self._send_or_hold(batch)
            await self._send_last()
            finished = True
        finally:
            await self._close_producer()
            if finished:
                self._sending_over = True
                self._deletable.set()
                await self._deleter
            await asyncio.to_thread(self._release_leadership)

    async def stop(self) -> None:
        """Send what was handed over, delete what was sent, then stop."""
        self._stopping.set()
        self._wake.set()

    async def finish_deletes(self) -> None:
        """After run() has ended for good (or never ran again after a crash): delete what
        was sent, then end the deleter."""
        self._sending_over = True
        self._deletable.set()
        if self._deleter is not None:
            await self._deleter

    async def _send_last(self) -> None:
        """While stopping: one more try for what was handed over. What fails stays in the
        outbox table, for the poll of the next start (or of another process)."""
        batch = self._held + self._queue
        self._held, self._queue, self._held_topics = [], [], set()
        if not batch:
            return
        if self._producer is None and not await self._connect(wait=False):
            self._inflight.difference_update(r.id for r in batch)
            return
        await self._send_or_hold(batch, final=True)

    def _take_ready(self) -> list[PendingRecord]:
        """What may be sent now: the held records once their wait is over, then the queue
        (records of a held topic join the held ones, behind them)."""
        ready: list[PendingRecord] = []
        if self._held and time.monotonic() >= self._held_until:
            ready = sorted(self._held, key=lambda r: r.id)  # as written
            self._held, self._held_topics = [], set()
        if self._queue:
            queued, self._queue = self._queue, []
            ready.extend(self._admit(queued))
        return ready

    def _admit(self, records: list[PendingRecord]) -> list[PendingRecord]:
        """``records`` less those of a topic that waits: they wait behind it."""
        if not self._held_topics:
            return records
        ready: list[PendingRecord] = []
        for r in records:
            (self._held if r.topic in self._held_topics else ready).append(r)
        return ready

    def _idle_wait(self) -> float:
        wait = self._settings.outbox_poll_interval_s
        if self._held:
            wait = min(wait, max(0.0, self._held_until - time.monotonic()))
        return wait

    async def _connect(self, *, wait: bool = True) -> bool:
        settings = self._settings
        producer = self._producer_factory(
            **settings.kafka.aiokafka_kwargs(),
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_batch_size=256 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=int(settings.outbox_send_timeout_s * 1000),
        )
        try:
            await producer.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            self._send_failures += 1
            self.healthy = False
            delay = backoff_delay(self._send_failures, self._rng)
            metrics.OUTBOX_SEND_FAILURES.labels("(connect)", type(exc).__name__).inc()
            log.warning("outbox relay: cannot reach Kafka (%s: %s); trying again in %.1f s",
                        type(exc).__name__, exc, delay)
            if wait:
                await self._sleep(delay)
            return False
        self._producer = producer
        return True

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.warning("outbox relay: closing the producer failed (%s)", type(exc).__name__)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _send_or_hold(self, batch: list[PendingRecord], *, final: bool = False) -> None:
        """Send ``batch``; the records of topics that failed wait (backoff) and go again.

        With ``final`` (stopping) nothing waits: failed records stay in the outbox table.
        """
        try:
            failed = await self._send(batch)
        except Exception as error:  # before any record left: the whole batch waits
            failed = {r.topic: error for r in batch}
        if not failed:
            if self._send_failures:
                log.info("outbox relay: sending again after %d failed tries",
                         self._send_failures)
            self._send_failures = 0
            self.healthy = True
            return
        await self._close_producer()  # a producer that failed is made anew
        waiting = [r for r in batch if r.topic in failed]
        for topic, exc in failed.items():
            metrics.OUTBOX_SEND_FAILURES.labels(topic, type(exc).__name__).inc()
            if isinstance(exc, MessageSizeTooLargeError):
                self._lower_max_record(topic, waiting)
        if final:
            self._inflight.difference_update(r.id for r in waiting)
            log.warning("outbox relay: stopping; %d records not sent (%s) stay in the outbox "
                        "for the next start", len(waiting), _describe(failed))
            return
        self._send_failures += 1
        self.healthy = False
        delay = backoff_delay(self._send_failures, self._rng)
        self._held = waiting + self._held
        self._held_topics.update(failed)
        self._held_until = time.monotonic() + delay
        log.warning("outbox relay: sending failed (%s); %d records wait %.1f s and are tried "
                    "again (try %d)", _describe(failed), len(waiting), delay,
                    self._send_failures)

    def _lower_max_record(self, topic: str, records: list[PendingRecord]) -> None:
        """The brokers refused a record as too large: their limit is lower than the setting;
        from now on the largest refused record's size and above go by reference."""
        sizes = [record_size(r.key, r.value, r.header_list()) for r in records
                 if r.topic == topic]
        largest = max(sizes, default=0)
        if 10_000 < largest <= self._max_record:
            self._max_record = largest - 1
            log.warning("outbox relay: the brokers refused a %d-byte record on %s as too "
                        "large; larger records than %d bytes now go by reference",
                        largest, topic, self._max_record)

    async def _send(self, batch: list[PendingRecord]) -> dict[str, BaseException]:
        """Send ``batch`` in order, one record batch per partition filled at a time; returns
        the topics whose records did not all go (the others' records are sent).

        Records go into the producer's batch builders directly instead of one ``send()``
        each (a future, a partitioner call and an accumulator look-up per record;
        docs/performance.md); the partition is the one ``send()`` would choose (the
        default partitioner: murmur2 of the key, the same as Kafka's Java clients), once per
        key. Order within a partition is kept: its batches are queued in turn. A record
        larger than ``max_record_bytes`` is first stored by reference."""
        producer = self._producer
        assert producer is not None
        if any(len(r.value) > self._max_record // 2 for r in batch):
            batch = await self._claim_oversized(batch)
        futures: list[tuple[str, asyncio.Future[Any]]] = []
        failed: dict[str, BaseException] = {}
        open_batches: dict[tuple[str, int], Any] = {}
        chosen: dict[tuple[str, bytes | None], int] = {}
        partitions: dict[str, list[int]] = {}
        for r in batch:
            if r.topic in failed:
                continue
            try:
                part = chosen.get((r.topic, r.key))
                if part is None:
                    if r.topic not in partitions:
                        partitions[r.topic] = sorted(await asyncio.wait_for(
                            producer.partitions_for(r.topic),
                            self._settings.outbox_send_timeout_s))
                    part = int(self._partitioner(r.key, partitions[r.topic],
                                                 partitions[r.topic]))
                    if r.key is not None:
                        chosen[(r.topic, r.key)] = part
                builder = open_batches.get((r.topic, part))
                headers = r.header_list()
                if builder is not None and builder.append(
                        key=r.key, value=r.value, timestamp=None, headers=headers) is not None:
                    continue
                if builder is not None:  # full: queue it, start the next one
                    futures.append((r.topic, await producer.send_batch(builder, r.topic,
                                                                       partition=part)))
                builder = producer.create_batch()
                if builder.append(key=r.key, value=r.value, timestamp=None,
                                  headers=headers) is None:  # larger than a batch on its own
                    open_batches.pop((r.topic, part), None)
                    futures.append((r.topic, await producer.send(
                        r.topic, value=r.value, key=r.key, partition=part, headers=headers)))
                    continue
                open_batches[(r.topic, part)] = builder
            except Exception as exc:
                failed[r.topic] = exc
        for (topic, part), builder in open_batches.items():
            if topic in failed:
                continue
            try:
                futures.append((topic, await producer.send_batch(builder, topic,
                                                                 partition=part)))
            except Exception as exc:
                failed[topic] = exc
        results = await self._acknowledged([f for _, f in futures])
        for (topic, _), result in zip(futures, results, strict=True):
            if isinstance(result, BaseException) and topic not in failed:
                failed[topic] = result
        sent = [r.id for r in batch if r.topic not in failed]
        self._sent.extend(sent)
        self._deletable.set()
        self.published += len(sent)
        metrics.OUTBOX_PUBLISHED.inc(len(sent))
        return failed

    async def _acknowledged(self, futures: list[asyncio.Future[Any]]) -> list[Any]:
        """The brokers' answers (or errors) to ``futures``; meanwhile
        :meth:`unacknowledged_for` grows."""
        self._waiting_since = time.monotonic()
        try:
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self._waiting_since = None

    def unacknowledged_for(self) -> float:
        """Seconds the records being sent have waited for the brokers' acknowledgement (0
        when none waits). The producer retries what Kafka refuses for a retriable reason
        (too few in-sync replicas, no leader) without failing the send, so a long wait is
        what says Kafka cannot take writes (``/readyz``)."""
        since = self._waiting_since
        return 0.0 if since is None else time.monotonic() - since

    async def _claim_oversized(self, batch: list[PendingRecord]) -> list[PendingRecord]:
        """Rows queued before their size was checked (older rows, a lower broker limit):
        their values go to ``hub_claim_check`` and the rows become pointers."""
        limit = self._max_record
        big = {r.id for r in batch if record_size(r.key, r.value, r.header_list()) > limit}
        if not big:
            return batch
        pointers = await asyncio.to_thread(self._check_in_rows,
                                           [r for r in batch if r.id in big])
        return [pointers.get(r.id, r) for r in batch]

    def _check_in_rows(self, records: list[PendingRecord]) -> dict[int, PendingRecord]:
        out: dict[int, PendingRecord] = {}
        with transaction(self._engine) as session:
            for r in records:
                value, headers = check_in(session, r.topic, key=r.key, value=r.value,
                                          headers=r.header_list(), now=utc_now())
                session.execute(sa.update(OutboxRecord.__table__)  # type: ignore[attr-defined]
                                .where(OutboxRecord.__table__.c.id == r.id)  # type: ignore[attr-defined]
                                .values(value=value, headers=dump_headers(headers)))
                out[r.id] = PendingRecord(r.id, r.topic, r.key, value, headers)
        log.warning("outbox relay: %d records over %d bytes go by reference (hub_claim_check)",
                    len(out), self._max_record)
        return out

    async def _poll(self) -> list[PendingRecord]:
        now = time.monotonic()
        if now - self._polled_at < self._settings.outbox_poll_interval_s:
            return []
        self._polled_at = now
        try:
            rows = await self._poll_rows()
        except Exception as exc:
            self._db_failures += 1
            self.healthy = False
            delay = backoff_delay(self._db_failures, self._rng)
            self._polled_at = now + delay  # the next poll after the backoff
            log.warning("outbox relay: polling the outbox failed (%s); trying again in %.1f s",
                        type(exc).__name__, delay)
            await asyncio.to_thread(self._release_leadership)
            return []
        if self._db_failures:
            self._db_failures = 0
            self.healthy = self._send_failures == 0
        return rows

    async def _poll_rows(self) -> list[PendingRecord]:
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
        try:
            rows = await asyncio.to_thread(self._fetch, fresh)
        except BaseException:
            self._inflight.difference_update(fresh)
            raise
        self._inflight.difference_update(set(fresh) - {r.id for r in rows})  # deleted meanwhile
        return rows

    async def _delete_loop(self) -> None:
        """Delete what was sent, behind the sends; once they are over, return when nothing
        is left.

        What is left is looked at before each wait, never only after one: a wake-up that
        came during a delete (the stop's among them) must not be the only sign of work.
        A delete that fails is tried again after a backoff; once the sends are over, it is
        given up (those rows are sent again by the next poll, and dropped as repeats).
        """
        failures = 0
        while True:
            if not self._sent:
                if self._sending_over:
                    return
                await self._deletable.wait()
                self._deletable.clear()
                continue
            ids, self._sent = self._sent, []
            try:
                await asyncio.to_thread(self._delete, ids)
            except Exception as exc:
                failures += 1
                if self._sending_over:
                    self._inflight.difference_update(ids)
                    log.warning("outbox relay: deleting %d sent records failed (%s) while "
                                "stopping; they will be sent again and dropped as repeats",
                                len(ids), type(exc).__name__)
                    continue
                self._sent = ids + self._sent
                delay = backoff_delay(failures, self._rng)
                log.warning("outbox relay: deleting %d sent records failed (%s); trying "
                            "again in %.1f s", len(ids), type(exc).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_sending_over(), delay)
                continue
            failures = 0
            self._remember_deleted(ids)
            self._inflight.difference_update(ids)

    async def _wait_sending_over(self) -> None:
        while not self._sending_over:
            self._deletable.clear()
            await self._deletable.wait()

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
            if time.monotonic() - self._lock_checked < LEADER_RETRY_S:
                return True
            try:
                self._lock_conn.execute(sa.text("select 1"))
                self._lock_checked = time.monotonic()
                return True
            except sa.exc.DBAPIError:
                self._release_leadership()
        now = time.monotonic()
        if now - self._lock_tried < LEADER_RETRY_S:
            return False
        self._lock_tried = now
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
        """Give the lock up. The lock belongs to the database session, and a connection
        closed back to the pool keeps its session (the pool only rolls back): it is
        invalidated instead, so that its session and the lock end."""
        if self._lock_conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._lock_conn.invalidate()
                self._lock_conn.close()
            self._lock_conn = None


def _describe(failed: dict[str, BaseException]) -> str:
    return "; ".join(f"{topic}: {type(exc).__name__}" for topic, exc in failed.items())
