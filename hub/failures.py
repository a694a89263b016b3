"""What the idempotent consumer does with a message that failed (hub/processing.py).

- dead-lettered at once when its handler raised a permanent failure, or after the last
  attempt (``hub_outbox`` row to ``<topic>.dlq`` with the ``x-dlq-*`` context headers);
- held until ``retry_at`` when its peer is in a maintenance window (WIN-3), without
  counting an attempt;
- otherwise scheduled for redelivery in ``hub_scheduled_retry`` with exponential backoff and
  jitter, taken again under a lease when due (:meth:`RetriesAndDeadLetters.claim_due`).

A :class:`hub.processing.Processor` holds one :class:`RetriesAndDeadLetters` for its
consumer.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.db import ProcessedMessage, ScheduledRetry, is_postgres, transaction
from hub.delivery import Delivery
from hub.dlq import dead_letter_headers
from hub.logs import redact_text
from hub.outbox import PendingRecord, dump_headers, insert_records, load_headers
from hub.settings import RetrySettings
from pipelines.ports import PermanentFailure
from schemas.envelope import Envelope
from schemas.topics import DLQ_SUFFIX

__all__ = ["BatchReport", "RetriesAndDeadLetters"]

log = logging.getLogger("hub.processing")
PM = ProcessedMessage.__table__  # type: ignore[attr-defined]
SR = ScheduledRetry.__table__  # type: ignore[attr-defined]
RETRY_LEASE = timedelta(seconds=60)


@dataclass
class BatchReport:
    done: int = 0
    duplicate: int = 0
    ignored: int = 0
    retried: int = 0
    dead_reasons: list[str] = field(default_factory=list)
    committed: list[PendingRecord] = field(default_factory=list)
    """Outbox records committed by this batch, for the relay to send at once."""

    @property
    def dead(self) -> int:
        return len(self.dead_reasons)


class RetriesAndDeadLetters:
    """One consumer's failure handling: retry a failed message later or dead-letter it, and
    take its scheduled retries again when due."""

    def __init__(self, consumer: str, engine: Engine, retry: RetrySettings, *,
                 max_attempts: int, clock: Callable[[], datetime],
                 rng: random.Random | None = None) -> None:
        self.consumer = consumer
        self.engine = engine
        self.retry = retry
        self.max_attempts = max_attempts
        """Counted attempts before a message is dead-lettered."""
        self.clock = clock
        self._rng = rng or random.Random()

    # -- failures: retry later or dead-letter -------------------------------------------------

    def fail(self, session: Session, d: Delivery, exc: Exception, report: BatchReport) -> None:
        """Record that handling ``d`` raised ``exc``: retry later or dead-letter it."""
        now = self.clock()
        attempt = d.attempt + 1
        message = redact_text(str(exc))[:500]
        history = [*d.history, {"attempt": attempt, "at": now.isoformat(),
                                "error": f"{type(exc).__name__}: {message}"}]
        rule_ids = tuple(getattr(exc, "rule_ids", ()) or ())
        retry_at: datetime | None = getattr(exc, "retry_at", None)
        permanent = isinstance(exc, PermanentFailure) or getattr(exc, "permanent", False)
        env = d.decoded
        if isinstance(env, Envelope):
            log.warning("handler failed on %s (attempt %d): %s", env.type, attempt,
                        f"{type(exc).__name__}: {message}")
        if permanent or (retry_at is None and attempt >= self.max_attempts):
            reason = "permanent-failure" if permanent else "retries-exhausted"
            report.committed.extend(insert_records(session, [self.dead_letter_row(
                d, now, reason=reason, error=exc, attempts=attempt, rule_ids=rule_ids,
                text=(getattr(exc, "text_ja", ""), getattr(exc, "text_en", "")),
                history=history)]))
            outcome = "dead"
            report.dead_reasons.append(reason)
            if d.retry_id is not None:
                session.execute(sa.delete(SR).where(SR.c.id == d.retry_id))
        else:
            if retry_at is not None:
                due, attempt = retry_at, d.attempt  # held for a window: not a failed try
            else:
                due = now + timedelta(seconds=self._backoff(attempt))
            self._schedule(session, d, due=due, attempt=attempt, history=history)
            outcome = "retrying"
            report.retried += 1
        self._mark(session, d.dedupe_id, outcome, now)

    def _backoff(self, attempt: int) -> float:
        base = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        spread = base * self.retry.jitter
        return float(max(0.0, base + self._rng.uniform(-spread, spread)))

    def _schedule(self, session: Session, d: Delivery, *, due: datetime, attempt: int,
                  history: list[dict[str, Any]]) -> None:
        values = {"attempt": attempt, "due_at": due, "history": json.dumps(history,
                                                                          ensure_ascii=False)}
        if d.retry_id is not None:
            session.execute(sa.update(SR).where(SR.c.id == d.retry_id).values(**values))
            return
        exists = session.execute(sa.select(SR.c.id).where(
            SR.c.consumer == self.consumer, SR.c.message_id == d.dedupe_id)).scalar()
        if exists is not None:
            session.execute(sa.update(SR).where(SR.c.id == exists).values(**values))
            return
        session.execute(sa.insert(SR).values(
            consumer=self.consumer, message_id=d.dedupe_id, topic=d.topic,
            partition=d.partition, offset=d.offset, key=d.key, value=d.value or b"",
            headers=dump_headers(d.headers), **values))

    def _mark(self, session: Session, message_id: str, outcome: str, now: datetime) -> None:
        updated = session.execute(sa.update(PM).where(
            PM.c.consumer == self.consumer, PM.c.message_id == message_id
        ).values(outcome=outcome, processed_at=now))
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            session.execute(sa.insert(PM).values(consumer=self.consumer, message_id=message_id,
                                                 outcome=outcome, processed_at=now))

    def dead_letter_row(self, d: Delivery, now: datetime, *, reason: str, error: Exception,
                         attempts: int = 1, rule_ids: Sequence[str] = (),
                         text: tuple[str, str] = ("", ""),
                         history: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        detail = getattr(error, "detail", None) or str(error)
        text_ja, text_en = text
        if not text_ja:
            text_ja = ("処理できなかったメッセージです。原因を取り除いてから hub dlq replay で"
                       "再処理してください。")
            text_en = "This message could not be processed. Remove the cause, then replay it " \
                      "with `hub dlq replay`."
        headers = dead_letter_headers(
            d, consumer=self.consumer, reason=reason, error_class=type(error).__name__,
            error_message=detail, attempts=attempts, rule_ids=rule_ids, text_ja=text_ja,
            text_en=text_en, history=history, at=now.isoformat())
        return {"topic": d.topic + DLQ_SUFFIX, "key": d.key, "value": d.value or b"",
                "headers": dump_headers(headers), "created_at": now}

    # -- the retry table ----------------------------------------------------------------------

    def claim_due(self, limit: int) -> list[Delivery]:
        """Take due retries under a lease, so that a crashed taker's rows come back later."""
        now = self.clock()
        with transaction(self.engine) as session:
            query = (sa.select(SR).where(SR.c.consumer == self.consumer, SR.c.due_at <= now)
                     .order_by(SR.c.due_at).limit(limit))
            if is_postgres(self.engine):
                query = query.with_for_update(skip_locked=True)
            rows = session.execute(query).all()
            if not rows:
                return []
            session.execute(sa.update(SR).where(SR.c.id.in_([r.id for r in rows]))
                            .values(due_at=now + RETRY_LEASE))
        return [
            Delivery(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key,
                     value=r.value, headers=load_headers(r.headers), attempt=r.attempt,
                     history=json.loads(r.history), retry_id=r.id)
            for r in rows
        ]
