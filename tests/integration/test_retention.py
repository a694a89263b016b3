"""Retention (hub/retention.py) on SQLite and PostgreSQL: what is pruned, what is kept,
in batches, and one pruner at a time on a shared PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from hub import metrics
from hub.consumers import ConsumerSpec
from hub.db import ClaimCheckRecord, ProcessedMessage
from hub.gateway.models import ChallengeRow, SessionRow
from hub.retention import RETENTION_LOCK_KEY, Retention
from hub.settings import RetentionSettings
from schemas.topics import KeyKind, TopicSpec

pytestmark = [pytest.mark.postgres]

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PROCESSED = ProcessedMessage.__table__
CLAIM_CHECKS = ClaimCheckRecord.__table__
CHALLENGES = ChallengeRow.__table__
CARD_SESSIONS = SessionRow.__table__
TOPIC = TopicSpec("t.retention", "retention test", KeyKind.CASE)  # 7 days, its .dlq 30 days
SPEC = ConsumerSpec("kept", (TOPIC,), handlers={})


def retention(**kw: Any) -> Retention:
    return Retention(RetentionSettings(**kw), [SPEC], clock=lambda: NOW)


def marker(message_id: str, outcome: str, age: timedelta, consumer: str = "kept") -> dict[str, Any]:
    return {"consumer": consumer, "message_id": message_id, "outcome": outcome,
            "processed_at": NOW - age}


def names(engine: Engine, table: sa.Table, column: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c[column])).scalars())


def test_markers_are_kept_for_the_topics_retention_plus_the_margin(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(PROCESSED), [
            marker("done-old", "done", 8 * DAY + timedelta(hours=1)),  # 7 d + 1 d margin
            marker("done-young", "done", 7 * DAY + timedelta(hours=12)),
            marker("dead-9d", "dead", 9 * DAY),  # a replay can still come (30 d + 1 d)
            marker("dead-32d", "dead", 32 * DAY),
            marker("retrying", "retrying", 100 * DAY),  # its retry is still scheduled
            marker("other", "done", 100 * DAY, consumer="not-run-here"),
        ])
    deleted = retention().prune(engine)
    assert deleted["hub_processed_message"] == 2
    assert names(engine, PROCESSED, "message_id") == {"done-young", "dead-9d", "retrying", "other"}
    assert metrics.TABLE_ROWS.labels("hub_processed_message")._value.get() == 4


def test_pruning_goes_in_batches_until_nothing_is_left(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(PROCESSED), [marker(f"m{i}", "done", 10 * DAY) for i in range(23)]
                     + [marker("young", "done", DAY)])
    deletes: list[int] = []

    def note(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM HUB_PROCESSED_MESSAGE"):
            deletes.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", note)
    try:
        assert retention(batch_rows=5, margin_s=0).prune(engine)["hub_processed_message"] == 23
    finally:
        event.remove(engine, "after_cursor_execute", note)
    # One short statement per batch, until one came back short ("done", then "dead").
    assert deletes == [5, 5, 5, 5, 3, 0]
    assert names(engine, PROCESSED, "message_id") == {"young"}


def test_claim_checks_are_kept_by_kind(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(CLAIM_CHECKS), [
            {"ref": ref, "topic": topic, "value": b"v", "size": 1, "sha256": "0" * 64,
             "created_at": NOW - age}
            for ref, topic, age in (("event-9d", "t.x", 9 * DAY), ("event-7d", "t.x", 7 * DAY),
                                    ("dlq-9d", "t.x.dlq", 9 * DAY),
                                    ("dlq-32d", "t.x.dlq", 32 * DAY))])
    deleted = retention().prune(engine)
    assert deleted == {"hub_processed_message": 0, "hub_claim_check": 2}
    assert names(engine, CLAIM_CHECKS, "ref") == {"event-7d", "dlq-9d"}
    assert metrics.PRUNED.labels("hub_claim_check")._value.get() >= 2


def test_one_pruner_at_a_time_on_postgres(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(PROCESSED), [marker("old", "done", 30 * DAY)])
    with pg_engine.connect() as other:  # another process is pruning
        assert other.execute(sa.text("select pg_try_advisory_lock(:k)"),
                             {"k": RETENTION_LOCK_KEY}).scalar()
        assert retention().prune(pg_engine) == {}
        assert names(pg_engine, PROCESSED, "message_id") == {"old"}
        other.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": RETENTION_LOCK_KEY})
    assert retention().prune(pg_engine)["hub_processed_message"] == 1
    assert names(pg_engine, PROCESSED, "message_id") == set()
