"""The relay against the real broker and databases: a record too large for Kafka, rows an
older hub left over the limit, and a topic deleted under the relay. Nothing ends the
relay, nothing stays stuck in the outbox, every dead letter is in its ``.dlq`` topic."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from hub.claimcheck import H_CLAIM, stored_value
from hub.db import OutboxRecord
from hub.dlq import read_dead_letters
from hub.outbox import dump_headers
from hub.runtime import Hub
from schemas.envelope import new_envelope, utc_now
from schemas.topics import TopicSpec
from schemas.wire import decode, header
from tests.support import ledger
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, publish, read_all
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

BIG = 2_096_900
"""The record of the report: it fits the broker (message.max.bytes 2,097,152), its
dead-letter copy with the x-dlq-* headers does not."""
OUTBOX = OutboxRecord.__table__


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n),
                         correlation_id=f"case-{n % 13}", procuring_entity="saitama-pref",
                         producer="test") for n in range(start, stop)]


async def publish_big(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=b"mail-1",
                                     headers=[("content-type", b"application/json")])
    finally:
        await producer.stop()


def outbox_rows(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() or 0)


def assert_relay_alive(hub: Hub) -> None:
    relay = next(t for t in hub._tasks if t.get_name() == "outbox-relay")
    assert not relay.done()
    assert hub.liveness() == {}


async def test_the_2096900_byte_record_is_dead_lettered_by_reference_and_the_relay_goes_on(
        kafka_bootstrap: str, db_url: str, engine: Any, unique: str) -> None:
    t_in, t_out = ledger.topics(f"t{unique}.big")
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    hub = Hub(settings_for(kafka_bootstrap, db_url, unique), [ledger.consumer(t_in.name[:-3])],
              engine=engine, serve_http=False)
    await hub.start()
    try:
        await publish(kafka_bootstrap, t_in.name, entries(0, 50))
        big = b'{"body":"' + b"x" * (BIG - 11) + b'"}'
        assert len(big) == BIG
        await publish_big(kafka_bootstrap, t_in.name, big)
        await publish(kafka_bootstrap, t_in.name, entries(50, 100))
        await wait_for(lambda: len(ledger.entry_counts(engine)) == 100, what="100 entries")
        await publish_big(kafka_bootstrap, t_in.name, b"later poison, not JSON")
        letters: list[Any] = []

        async def two_dead_letters() -> bool:
            letters[:] = await read_dead_letters(hub.settings, [t_in.dlq], timeout_s=2)
            return len(letters) == 2

        await wait_for(two_dead_letters, what="both dead letters on the .dlq topic")
        await wait_for(lambda: outbox_rows(engine) == 0, what="nothing stuck in the outbox")
        assert_relay_alive(hub)
        by_reason = {d.summary()["reason"]: d for d in letters}
        assert set(by_reason) == {"oversize", "not-json"}
        oversize = by_reason["oversize"].summary()
        assert oversize["stored_by_reference"]["bytes"] == BIG
        assert "2096900 bytes" in oversize["error"]
        assert stored_value(engine, oversize["stored_by_reference"]["ref"]) == big
        assert by_reason["not-json"].value == b"later poison, not JSON"
        out = await read_all(kafka_bootstrap, t_out.name, expect=100)
        assert sorted(decode(r.value, r.headers).payload.entry_no for r in out) == list(
            range(100))
    finally:
        await hub.stop()


async def test_rows_an_older_hub_left_over_the_limit_go_by_reference_after_a_restart(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str) -> None:
    # What the report's outbox held after the relay died: dead-letter rows of the big
    # record, never sent. A hub started on it sends them (by reference) and goes on.
    t_in, t_out = ledger.topics(f"t{unique}.left")
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(pg_engine)
    big = b"y" * BIG
    headers = [("x-dlq-reason", b"oversize"), ("x-dlq-original-topic", t_in.name.encode()),
               ("x-dlq-error-message", b"oversize: 2096900 bytes > 1048576")]
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), [
            {"topic": t_in.dlq, "key": b"k", "value": big, "headers": dump_headers(headers),
             "created_at": utc_now()} for _ in range(4)])
    for run in range(2):
        hub = Hub(settings_for(kafka_bootstrap, pg_url, unique), [ledger.consumer(
            t_in.name[:-3])], engine=pg_engine, serve_http=False)
        await hub.start()
        try:
            await publish(kafka_bootstrap, t_in.name, entries(run * 20, run * 20 + 20))
            await wait_for(lambda run=run: len(ledger.entry_counts(pg_engine)) == 20 * (run + 1),
                           what="the entries of this run")
            await wait_for(lambda: outbox_rows(pg_engine) == 0, what="the outbox drained")
            assert_relay_alive(hub)
        finally:
            await hub.stop()
    letters = await read_dead_letters(hub.settings, [t_in.dlq], timeout_s=2)
    assert len(letters) >= 4  # four rows (a repeat only if a delete was lost)
    for letter in letters:
        ref = header(letter.headers, H_CLAIM)
        assert ref is not None
        assert len(letter.value or b"") < 1000
        assert stored_value(pg_engine, ref) == big
        assert letter.summary()["reason"] == "oversize"


async def _recreate(bootstrap: str, spec: TopicSpec) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async def created() -> bool:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, 1)])
            except KafkaError:  # still being deleted
                return False
            return True

        await wait_for(created, timeout_s=60, what="the topic created again")
    finally:
        await admin.close()


async def test_a_deleted_topic_holds_its_records_while_the_others_flow(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str) -> None:
    t_in, t_out = ledger.topics(f"t{unique}.gone")
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(pg_engine)
    settings = settings_for(kafka_bootstrap, pg_url, unique, outbox_send_timeout_s=2.0)
    hub = Hub(settings, [ledger.consumer(t_in.name[:-3])], engine=pg_engine, serve_http=False)
    await hub.start()
    try:
        await publish(kafka_bootstrap, t_in.name, entries(0, 30))
        await wait_for(lambda: outbox_rows(pg_engine) == 0 and len(
            ledger.entry_counts(pg_engine)) == 30, what="the first 30 relayed")
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([t_out.name])
        finally:
            await admin.close()
        await publish(kafka_bootstrap, t_in.name, entries(30, 60))
        await wait_for(lambda: len(ledger.entry_counts(pg_engine)) == 60, what="60 booked")
        # The events of 30..59 cannot go: they wait in the outbox, the relay is not ended.
        await wait_for(lambda: not hub.relay.healthy, what="the relay reporting the failure")
        assert outbox_rows(pg_engine) == 30
        assert_relay_alive(hub)
        await _recreate(kafka_bootstrap, t_out)
        back_at = time.monotonic()
        await wait_for(lambda: outbox_rows(pg_engine) == 0, timeout_s=120,
                       what="the held events sent once the topic is back")
        print(f"deleted topic: its 30 events sent {time.monotonic() - back_at:.1f} s after "
              "it was created again")
        assert hub.relay.healthy
        out = await read_all(kafka_bootstrap, t_out.name, timeout_s=30)
        got = {decode(r.value, r.headers).payload.entry_no for r in out}
        assert got == set(range(30, 60))  # the topic was new: only the held ones are on it
        assert_relay_alive(hub)
    finally:
        await asyncio.wait_for(hub.stop(), 60)
