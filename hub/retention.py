"""Retention: the hub's bookkeeping tables are pruned, in batches, by a periodic job.

What is kept, and for how long (``HUB_RETENTION__*``, :class:`hub.settings.RetentionSettings`):

- ``hub_processed_message``: a consumer's ``done`` markers for the longest retention of its
  topics plus ``margin_s`` (a record can be delivered again for as long as it is on its
  topic, and its marker is what makes the repeat a no-op); ``dead`` markers for the
  dead-letter topics' retention plus the margin (``hub dlq replay`` can send a dead letter
  back for as long as it exists); ``retrying`` markers stay while their retry is scheduled.
  Markers of consumers this hub does not run are left alone.
- ``hub_claim_check``: values stored by reference (hub/claimcheck.py), ``claim_check_s``
  for ordinary topics and ``dead_letter_s`` for dead letters.
- ``gw_challenge``, ``gw_session`` and review links are not pruned here: the edge's own
  job deletes them as they expire (hub/gateway/purge.py); their sizes are measured here.
- ``hub_outbox`` needs no pruning: a row is deleted once Kafka has it.

Each delete takes at most ``batch_rows`` rows in its own short transaction, so pruning
never holds long locks against the consumers. With several ``hub run`` processes on
PostgreSQL, one at a time prunes (a session advisory try-lock; the others skip that
round); the deletes are idempotent anyway. ``hub_table_rows{table=...}`` gives each
table's size after a round, ``hub_retention_pruned_total{table=...}`` what went.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub import metrics
from hub.consumers import ConsumerSpec
from hub.db import (
    ClaimCheckRecord,
    OutboxRecord,
    ProcessedMessage,
    ProcessedOutcome,
    ScheduledRetry,
    is_postgres,
)
from hub.gateway.models import ChallengeRow, SessionRow
from hub.settings import RetentionSettings
from schemas.envelope import utc_now
from schemas.topics import DLQ_SUFFIX

__all__ = ["RETENTION_LOCK_KEY", "Retention", "table_sizes"]

log = logging.getLogger(__name__)
RETENTION_LOCK_KEY = 0x68_75_62_5F_72_74  # "hub_rt": one pruner at a time per database
PROCESSED = ProcessedMessage.__table__  # type: ignore[attr-defined]
CLAIM_CHECKS = ClaimCheckRecord.__table__  # type: ignore[attr-defined]
CHALLENGES = ChallengeRow.__table__  # type: ignore[attr-defined]
CARD_SESSIONS = SessionRow.__table__  # type: ignore[attr-defined]
MEASURED = (PROCESSED, CLAIM_CHECKS, CHALLENGES, CARD_SESSIONS, OutboxRecord.__table__,  # type: ignore[attr-defined]
            ScheduledRetry.__table__)  # type: ignore[attr-defined]


class Retention:
    """One pruning round per :meth:`run` (a ``hub run`` job)."""

    def __init__(self, settings: RetentionSettings, consumers: Sequence[ConsumerSpec], *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.consumers = list(consumers)
        self.clock = clock

    async def run(self, engine: Engine) -> dict[str, int]:
        return await asyncio.to_thread(self.prune, engine)

    def prune(self, engine: Engine) -> dict[str, int]:
        """Delete what is past its retention; returns the rows deleted per table (empty
        when another process holds the pruning lock)."""
        lock = _try_lock(engine)
        if lock is False:
            return {}
        try:
            deleted = self._prune(engine)
        finally:
            if lock is not True:
                _unlock(lock)
        for table, n in deleted.items():
            if n:
                metrics.PRUNED.labels(table).inc(n)
        table_sizes(engine)
        if any(deleted.values()):
            log.info("retention: pruned %s", ", ".join(f"{t} {n}" for t, n in deleted.items()
                                                      if n))
        return deleted

    def _prune(self, engine: Engine) -> dict[str, int]:
        now = self.clock()
        s = self.settings
        margin = timedelta(seconds=s.margin_s)
        deleted = {PROCESSED.name: 0, CLAIM_CHECKS.name: 0}
        for spec in self.consumers:
            kept = timedelta(milliseconds=max(t.retention_ms for t in spec.topics)) + margin
            kept_dead = timedelta(milliseconds=max(t.dlq_retention_ms for t in spec.topics)
                                  ) + margin
            for outcome, keep in ((ProcessedOutcome.DONE, kept),
                                  (ProcessedOutcome.DEAD, kept_dead)):
                deleted[PROCESSED.name] += self._delete(engine, PROCESSED, sa.and_(
                    PROCESSED.c.consumer == spec.name, PROCESSED.c.outcome == outcome,
                    PROCESSED.c.processed_at < now - keep))
        is_dead_letter = CLAIM_CHECKS.c.topic.like(f"%{DLQ_SUFFIX}")
        deleted[CLAIM_CHECKS.name] += self._delete(engine, CLAIM_CHECKS, sa.and_(
            ~is_dead_letter, CLAIM_CHECKS.c.created_at < now - timedelta(seconds=s.claim_check_s)))
        deleted[CLAIM_CHECKS.name] += self._delete(engine, CLAIM_CHECKS, sa.and_(
            is_dead_letter, CLAIM_CHECKS.c.created_at < now - timedelta(seconds=s.dead_letter_s)))
        return deleted

    def _delete(self, engine: Engine, table: sa.Table, where: Any) -> int:
        """Delete the rows ``where`` selects, ``batch_rows`` per transaction."""
        batch = self.settings.batch_rows
        key = list(table.primary_key.columns)
        total = 0
        while True:
            chosen = sa.select(*key).where(where).limit(batch)
            match = (key[0].in_(chosen.scalar_subquery()) if len(key) == 1
                     else sa.tuple_(*key).in_(chosen))
            with engine.begin() as conn:
                n = int(conn.execute(sa.delete(table).where(match)).rowcount or 0)
            total += n
            if n < batch:
                return total


def table_sizes(engine: Engine) -> dict[str, int]:
    """Rows of each table retention looks after (and the outbox and retry tables), also
    set as ``hub_table_rows``."""
    sizes: dict[str, int] = {}
    with engine.connect() as conn:
        for table in MEASURED:
            sizes[table.name] = int(conn.execute(
                sa.select(sa.func.count()).select_from(table)).scalar() or 0)
    for name, n in sizes.items():
        metrics.TABLE_ROWS.labels(name).set(n)
    return sizes


def _try_lock(engine: Engine) -> sa.Connection | bool:
    """On PostgreSQL a connection holding the pruning lock, or False when another process
    holds it; True elsewhere (SQLite: one process)."""
    if not is_postgres(engine):
        return True
    conn = engine.connect()
    try:
        got = conn.execute(sa.text("select pg_try_advisory_lock(:k)"),
                           {"k": RETENTION_LOCK_KEY}).scalar()
        conn.commit()
    except BaseException:
        conn.close()
        raise
    if not got:
        conn.close()
        return False
    return conn


def _unlock(conn: sa.Connection | bool) -> None:
    if isinstance(conn, sa.Connection):
        try:
            conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": RETENTION_LOCK_KEY})
            conn.commit()
        except sa.exc.DBAPIError:
            log.warning("retention: unlocking failed; the lock ends with its connection")
        finally:
            conn.close()
