"""Rows written with ``enqueue`` (the gateway, the review page, the staff API, the jobs)
leave at their commit: the hub's relay sends them without waiting for its orphan poll."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.db import OutboxRecord
from hub.outbox import enqueue
from hub.runtime import Hub
from schemas.envelope import new_envelope
from schemas.topics import TopicSpec
from tests.support import ledger
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, read_all
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def outbox_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            OutboxRecord.__table__)).scalar() or 0)  # type: ignore[attr-defined]


def failing_write(engine: Engine, topic: TopicSpec) -> None:
    with Session(engine) as session, session.begin():
        enqueue(session, topic, new_envelope(
            LedgerEntryRequested(entry_no=2, amount=2), correlation_id="c-2",
            procuring_entity="saitama-pref", producer="test"))
        session.flush()
        raise RuntimeError("the transaction fails after its flush")


async def test_enqueued_rows_are_sent_at_commit_not_at_the_poll(
        kafka_bootstrap: str, pg_url: str, unique: str) -> None:
    topic, _ = ledger.topics(f"t{unique}.handover")
    await create_topics(kafka_bootstrap, [topic])
    # the orphan poll would take these rows only after an hour
    hub = Hub(settings_for(kafka_bootstrap, pg_url, unique, outbox_orphan_age_s=3600.0), [],
              serve_http=False)
    await hub.start()
    try:
        with Session(hub.engine) as session, session.begin():
            enqueue(session, topic, new_envelope(
                LedgerEntryRequested(entry_no=1, amount=1), correlation_id="c-1",
                procuring_entity="saitama-pref", producer="test"))
        with pytest.raises(RuntimeError):  # rolled back after its flush: never sent
            failing_write(hub.engine, topic)
        records = await read_all(kafka_bootstrap, topic.name, expect=1, timeout_s=30)
        assert len(records) == 1
        await wait_for(lambda: outbox_size(hub.engine) == 0, 30, "the sent row deleted")
    finally:
        await hub.stop()
