"""The outbox relay's record batches through the real broker: each key lands on the
partition a plain ``send()`` chooses, records of one key keep their order across many
batches, a record larger than a batch still goes, and keyless records go too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.outbox import OutboxRelay, insert_records
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]


def row(topic: str, key: bytes | None, value: bytes, n: int) -> dict[str, Any]:
    """An outbox row; every other one also with its headers as a list, as ``record_row``
    makes them (handed to the relay as they are, not parsed back from the JSON text)."""
    made = {"topic": topic, "key": key, "value": value, "headers": f'[["n","{n}"]]',
            "created_at": datetime.now(UTC)}
    if n % 2 == 0:
        made["headers_parsed"] = [("n", str(n).encode())]
    return made


async def test_relay_batches_keep_partitions_order_and_large_records(
        kafka_bootstrap: str, db_url: str, engine: Engine, unique: str) -> None:
    relayed = TopicSpec(f"t{unique}.relay.batches", "relay test", KeyKind.CASE, partitions=6)
    plain = TopicSpec(f"t{unique}.relay.plain", "relay test", KeyKind.CASE, partitions=6)
    await create_topics(kafka_bootstrap, [relayed, plain])
    keys = [f"case-{i}".encode() for i in range(40)] + ["案件-京都".encode()]
    sent = [(keys[n % len(keys)], n) for n in range(3000)]
    big = b"x" * (300 * 1024)  # larger than the relay's 256 KiB batches
    sent.insert(1500, (keys[3], -1))
    rows = [row(relayed.name, k, big if n == -1 else b"v%d" % n, n) for k, n in sent]
    rows.append(row(relayed.name, None, b"keyless", -2))
    with Session(engine) as session, session.begin():
        pending = insert_records(session, rows)

    relay = OutboxRelay(settings_for(kafka_bootstrap, db_url, unique), engine)
    task = asyncio.create_task(relay.run())
    try:
        relay.dispatch(pending)
        await wait_for(lambda: relay.published == len(rows), what="the relay sent every row")
    finally:
        await relay.stop()
        await task

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(plain.name, value=b"p", key=k) for k in keys])
    finally:
        await producer.stop()
    expected = {r.key: r.partition for r in await read_all(kafka_bootstrap, plain.name,
                                                            expect=len(keys))}

    got = await read_all(kafka_bootstrap, relayed.name, expect=len(rows))
    assert len(got) == len(rows)
    order: dict[bytes, list[int]] = {}
    for r in got:
        n = int(dict(r.headers)["n"])
        if r.key is not None:
            assert r.partition == expected[r.key], r.key
            order.setdefault(r.key, []).append(n)
    assert [r.value for r in got if r.key is None] == [b"keyless"]
    assert [r.value for r in got if int(dict(r.headers)["n"]) == -1] == [big]
    for key in keys:
        assert order[key] == [n for k, n in sent if k == key], key
