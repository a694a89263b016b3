"""The idempotent consumer: at-least-once delivery in, exactly-once effects out.

For each batch of records the :class:`Processor` opens one database transaction,
drops the messages this consumer has already handled, runs the handler of each
new one, writes the handlers' events to the outbox and marks the messages
processed, then commits. Only after the commit are the Kafka offsets committed,
so a crash anywhere re-delivers the batch, and the processed-markers make the
repeat a no-op.

When a batch fails, it is run again one message per transaction, so that one
bad message cannot hold the others back. A failing message is then:
- dead-lettered at once when it is poison (not a canonical message) or its
  handler raises a permanent failure;
- held until ``retry_at`` when its peer is in a maintenance window (WIN-3);
- otherwise scheduled for redelivery with exponential backoff and jitter
  (``hub_scheduled_retry``), without blocking its partition, and dead-lettered
  after the last attempt (:mod:`hub.failures`).
Database outages are not a message's fault: the whole batch waits and is tried
again, and nothing is committed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import claimcheck, metrics, tracing
from hub.claimcheck import is_pointer
from hub.consumers import BatchState, ConsumerSpec
from hub.db import (
    ProcessedMessage,
    ProcessedOutcome,
    ScheduledRetry,
    is_postgres,
    transaction,
)
from hub.delivery import Delivery
from hub.failures import BatchReport, RetriesAndDeadLetters
from hub.logs import correlation
from hub.outbox import PendingRecord, insert_records, record_row
from hub.settings import RetrySettings
from schemas.envelope import Envelope, caused_envelope, utc_now
from schemas.fast import remembering
from schemas.registry import Payload
from schemas.topics import TopicSpec
from schemas.wire import WireError
from storage.bulk import insert_rows

__all__ = ["BatchReport", "Processor", "is_infrastructure_error"]

log = logging.getLogger(__name__)
PROCESSED = ProcessedMessage.__table__  # type: ignore[attr-defined]
RETRIES = ScheduledRetry.__table__  # type: ignore[attr-defined]


EFFECT_CLAIM_POLL_S = 0.2
"""How often a consumer looks again at an effect another consumer has claimed."""


def is_infrastructure_error(exc: BaseException) -> bool:
    """The database itself failed: no message is to blame, the batch must wait."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )


@dataclass
class _Context:
    """What a handler sees (pipelines.ports.HandlerContext)."""

    transaction_session: Session | None
    """The batch's session; an effect has none."""
    processing_time: datetime
    producer: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    appended: dict[sa.Table, list[dict[str, Any]]] = field(default_factory=dict)
    prepared: BatchState | None = None
    """The consumer's per-batch state (``ConsumerSpec.prepare``), if it has one."""

    @property
    def session(self) -> Session:
        if self.transaction_session is None:
            raise RuntimeError("an effect has no database session; emit events instead")
        return self.transaction_session

    @property
    def now(self) -> datetime:
        return self.processing_time

    def append_row(self, table: sa.Table, row: dict[str, Any]) -> None:
        self.appended.setdefault(table, []).append(row)

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        env = caused_envelope(payload, cause, producer=self.producer,
                              occurred_at=self.processing_time,
                              correlation_id=correlation_id, entity=entity)
        self.rows.append(record_row(topic, env, self.processing_time))
        return env


class Processor:
    """Runs one consumer's handlers over deliveries, with the guarantees above."""

    def __init__(self, spec: ConsumerSpec, engine: Engine, retry: RetrySettings, *,
                 producer: str, clock: Callable[[], datetime] = utc_now,
                 rng: random.Random | None = None,
                 on_commit: Callable[[list[PendingRecord]], None] | None = None) -> None:
        self.spec = spec
        self.engine = engine
        self.retry = retry
        self.producer = producer
        self.clock = clock
        self.on_commit = on_commit
        self.failures = RetriesAndDeadLetters(
            spec.name, engine, retry, max_attempts=spec.max_attempts or retry.max_attempts,
            clock=clock, rng=rng)
        self._age = metrics.MESSAGE_AGE.labels(spec.name)

    # -- entry points -------------------------------------------------------------------

    async def process(self, deliveries: Sequence[Delivery]) -> BatchReport:
        """Handle ``deliveries``; returns only when every one is done, held or dead-lettered.

        Raises only what is not a message's fault (database down), after which
        nothing of the batch is committed.
        """
        report = BatchReport()
        started = time.perf_counter()
        if any(is_pointer(d.headers) for d in deliveries):  # values stored by reference
            await asyncio.to_thread(claimcheck.resolve, self.engine, deliveries)
        pending: list[Delivery] = []
        for d in deliveries:
            env = d.decoded
            handler = self.spec.handler_for(env.payload) if isinstance(env, Envelope) else None
            if handler is None and isinstance(env, Envelope) and d.retry_id is None:
                # Not this consumer's message (a topic carries several types): nothing to
                # record, so no transaction (a case's connectors skip most of what they read).
                report.ignored += 1
                continue
            if handler is not None and ConsumerSpec.is_effect(handler):
                if pending:
                    await asyncio.to_thread(self._process_sync, pending, report)
                    pending = []
                await self._process_effect(d, report)
            else:
                pending.append(d)
        if pending:
            await asyncio.to_thread(self._process_sync, pending, report)
        metrics.HANDLER_LATENCY.labels(self.spec.name).observe(time.perf_counter() - started)
        self._count(report)
        if self.on_commit is not None and report.committed:
            self.on_commit(report.committed)
        return report

    async def run_due_retries(self, limit: int = 200) -> int:
        """Redeliver the scheduled retries that are due. Returns how many were taken."""
        claimed = await asyncio.to_thread(self.failures.claim_due, limit)
        if claimed:
            await self.process(claimed)
        return len(claimed)

    # -- transactional handlers -----------------------------------------------------------

    def _process_sync(self, deliveries: list[Delivery], report: BatchReport) -> None:
        fast = BatchReport()
        try:
            # remembering: a payload written again after its event reuses its text.
            with transaction(self.engine) as session, remembering():
                self._apply(session, deliveries, fast)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            if len(deliveries) == 1 and not isinstance(exc, sa.exc.IntegrityError):
                self._fail_in_tx(deliveries[0], exc, report)
                return
            log.info("batch of %d failed (%s); handling one by one", len(deliveries),
                     type(exc).__name__)
        else:
            _merge(report, fast)
            return
        for d in deliveries:
            self._process_one(d, report)

    def _process_one(self, d: Delivery, report: BatchReport) -> None:
        for attempt_here in range(2):
            one = BatchReport()
            try:
                with transaction(self.engine) as session, remembering():
                    self._apply(session, [d], one)
            except sa.exc.IntegrityError:
                # Another process handled it at the same moment (a rebalance): look again.
                if attempt_here == 0:
                    continue
                exc: Exception = RuntimeError("integrity conflict on every try")
            except Exception as err:
                if is_infrastructure_error(err):
                    raise
                exc = err
            else:
                _merge(report, one)
                return
            with transaction(self.engine) as session:
                self.failures.fail(session, d, exc, report)
            return

    def _apply(self, session: Session, deliveries: list[Delivery], report: BatchReport) -> None:
        now = self.clock()
        ids = [d.dedupe_id for d in deliveries]
        seen: dict[str, str] = {row[0]: row[1] for row in session.execute(self._seen_query(ids))}
        inserts: dict[str, ProcessedOutcome] = {}
        updates: dict[str, ProcessedOutcome] = {}
        outbox: list[dict[str, Any]] = []
        ctx = _Context(session, now, self.producer)
        if self.spec.prepare is not None:
            ctx.prepared = self.spec.prepare(session, [
                d.decoded for d in deliveries if isinstance(d.decoded, Envelope)
                and self._should_handle(d, seen.get(d.dedupe_id))])
        for d in deliveries:
            mid = d.dedupe_id
            prior = seen.get(mid)
            env = d.decoded
            if isinstance(env, WireError):
                if prior is None:
                    outbox.append(self.failures.dead_letter_row(
                        d, now, reason=env.reason.value, error=env,
                        text=(env.text_ja, env.text_en)))
                    inserts[mid] = seen[mid] = ProcessedOutcome.DEAD
                    report.dead_reasons.append(env.reason.value)
                else:
                    report.duplicate += 1
                continue
            if not self._should_handle(d, prior):
                report.duplicate += 1
                continue
            handler = self.spec.handler_for(env.payload)
            if handler is None:
                report.ignored += 1
                continue
            ctx.rows = []
            token = correlation.set(env.correlation_id)
            try:
                with tracing.consuming(self.spec.name, d.topic, d.headers, calls_out=False):
                    handler(ctx, env)
            finally:
                correlation.reset(token)
            outbox.extend(ctx.rows)
            (updates if prior is not None else inserts)[mid] = seen[mid] = ProcessedOutcome.DONE
            if d.retry_id is not None:
                session.execute(sa.delete(RETRIES).where(RETRIES.c.id == d.retry_id))
            report.done += 1
            self._observe_age(env, now)
        if ctx.prepared is not None:
            ctx.prepared.finish(session)
        for table, rows in ctx.appended.items():
            insert_rows(session, table, rows)
        report.committed.extend(self._write(session, now, inserts, updates, outbox))

    def _seen_query(self, ids: list[str]) -> sa.Select[Any]:
        """Which of ``ids`` this consumer has handled, and how.

        On PostgreSQL the ids are joined as an array, so the planner looks each one up in
        the primary key instead of filtering the consumer's rows against a long IN list.
        """
        if not is_postgres(self.engine):
            return sa.select(PROCESSED.c.message_id, PROCESSED.c.outcome).where(
                PROCESSED.c.consumer == self.spec.name, PROCESSED.c.message_id.in_(ids))
        wanted = sa.func.unnest(sa.bindparam("ids", ids, type_=ARRAY(sa.String))) \
            .table_valued("id").render_derived()
        return sa.select(PROCESSED.c.message_id, PROCESSED.c.outcome).select_from(wanted.join(
            PROCESSED, sa.and_(PROCESSED.c.consumer == self.spec.name,
                               PROCESSED.c.message_id == wanted.c.id)))

    def _should_handle(self, d: Delivery, prior: str | None) -> bool:
        if prior is None:
            return True
        if prior == ProcessedOutcome.CLAIMED:  # an effect under way elsewhere, or its owner died
            return True
        if prior == ProcessedOutcome.DEAD:
            return d.is_replay
        if prior == ProcessedOutcome.RETRYING:
            return d.retry_id is not None or d.is_replay
        return False

    def _write(self, session: Session, now: datetime, inserts: dict[str, ProcessedOutcome],
               updates: dict[str, ProcessedOutcome], outbox: list[dict[str, Any]],
               ) -> list[PendingRecord]:
        insert_rows(session, PROCESSED, [
            {"consumer": self.spec.name, "message_id": m, "outcome": o, "processed_at": now}
            for m, o in inserts.items()])
        for m, o in updates.items():
            session.execute(sa.update(PROCESSED).where(PROCESSED.c.consumer == self.spec.name,
                                                       PROCESSED.c.message_id == m)
                            .values(outcome=o, processed_at=now))
        return insert_records(session, outbox)

    # -- effects (calls to outside systems) -------------------------------------------------

    async def _process_effect(self, d: Delivery, report: BatchReport) -> None:
        env = d.decoded
        assert isinstance(env, Envelope)
        prior = await asyncio.to_thread(self._outcome_of, d.dedupe_id)
        if not self._should_handle(d, prior) or not await self._claim_effect(d, prior):
            report.duplicate += 1
            return
        prior = ProcessedOutcome.CLAIMED
        handler = self.spec.handler_for(env.payload)
        ctx = _Context(None, self.clock(), self.producer)
        token = correlation.set(env.correlation_id)
        try:
            with tracing.consuming(self.spec.name, d.topic, d.headers):
                await handler(ctx, env)  # type: ignore[misc]
        except Exception as exc:
            await asyncio.to_thread(self._fail_in_tx, d, exc, report)
            return
        finally:
            correlation.reset(token)
        await asyncio.to_thread(self._record_effect, d, prior, ctx, report)

    async def _claim_effect(self, d: Delivery, prior: str | None) -> bool:
        """Claim the message before the outside call, so that two consumers never make it
        at once (a partition revoked in a rebalance while its batch is still in flight, and
        its new owner reading the same records). A claim another consumer holds is waited
        for: done there, this copy is a duplicate (False); held longer than
        ``RetrySettings.effect_claim_s`` (its process died mid-call), it is taken over."""
        while True:
            if await asyncio.to_thread(self._claim, d.dedupe_id, prior):
                return True
            await asyncio.sleep(EFFECT_CLAIM_POLL_S)
            prior = await asyncio.to_thread(self._outcome_of, d.dedupe_id)
            if prior != ProcessedOutcome.CLAIMED and not self._should_handle(d, prior):
                return False

    def _claim(self, message_id: str, prior: str | None) -> bool:
        now = self.clock()
        with transaction(self.engine) as session:
            if prior is None:
                try:
                    with session.begin_nested():
                        session.execute(sa.insert(PROCESSED).values(
                            consumer=self.spec.name, message_id=message_id,
                            outcome=ProcessedOutcome.CLAIMED, processed_at=now))
                except sa.exc.IntegrityError:
                    return False
                return True
            held = PROCESSED.c.outcome == prior
            if prior == ProcessedOutcome.CLAIMED:
                stale = now - timedelta(seconds=self.retry.effect_claim_s)
                held = held & (PROCESSED.c.processed_at < stale)
            taken = session.execute(sa.update(PROCESSED).where(
                PROCESSED.c.consumer == self.spec.name, PROCESSED.c.message_id == message_id, held,
            ).values(outcome=ProcessedOutcome.CLAIMED, processed_at=now))
            return bool(taken.rowcount)  # type: ignore[attr-defined]

    def _outcome_of(self, message_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(PROCESSED.c.outcome).where(
                PROCESSED.c.consumer == self.spec.name,
                PROCESSED.c.message_id == message_id)).scalar()

    def _record_effect(self, d: Delivery, prior: str | None, ctx: _Context,
                       report: BatchReport) -> None:
        now = self.clock()
        mid = d.dedupe_id
        with transaction(self.engine) as session:
            for table, rows in ctx.appended.items():
                session.execute(sa.insert(table), rows)
            done: dict[str, ProcessedOutcome] = {mid: ProcessedOutcome.DONE}
            report.committed.extend(self._write(session, now, {} if prior else done,
                                                done if prior else {}, ctx.rows))
            if d.retry_id is not None:
                session.execute(sa.delete(RETRIES).where(RETRIES.c.id == d.retry_id))
        report.done += 1
        env = d.decoded
        if isinstance(env, Envelope):
            self._observe_age(env, now)

    def _fail_in_tx(self, d: Delivery, exc: Exception, report: BatchReport) -> None:
        with transaction(self.engine) as session:
            self.failures.fail(session, d, exc, report)

    # -- metrics ------------------------------------------------------------------------------

    def _observe_age(self, env: Envelope[Any], now: datetime) -> None:
        self._age.observe(
            max(0.0, (now - env.occurred_at).total_seconds()))

    def _count(self, report: BatchReport) -> None:
        name = self.spec.name
        for outcome in ("done", "duplicate", "ignored"):
            if n := getattr(report, outcome):
                metrics.PROCESSED.labels(name, outcome).inc(n)
        if report.retried:
            metrics.RETRIED.labels(name).inc(report.retried)
        for reason in report.dead_reasons:
            metrics.DEAD_LETTERED.labels(name, reason).inc()


def _merge(into: BatchReport, part: BatchReport) -> None:
    into.done += part.done
    into.duplicate += part.duplicate
    into.ignored += part.ignored
    into.retried += part.retried
    into.dead_reasons.extend(part.dead_reasons)
    into.committed.extend(part.committed)
