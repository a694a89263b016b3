"""An idle consumer of the hub polls rarely (real Kafka, the hub's default settings).

Every consumer group of a hub process loops while it has nothing to read: its batch
subscriber asks aiokafka for records, waiting up to ``batch_timeout_ms`` (without
FastStream's sleep after an empty poll: hub/broker.py), and aiokafka keeps a fetch at the
broker, which holds it up to ``fetch_max_wait_ms``. Records end both waits at once, so
longer waits cost no latency; short ones cost CPU in the hub and in Kafka for every
consumer group, whether messages come or not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient

from hub.broker import ConsumerRuntime, build_broker
from hub.consumers import ConsumerSpec
from hub.db import create_db_engine
from hub.processing import Processor
from hub.settings import KafkaSettings, RetrySettings
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import wait_for
from tests.support.kafka import create_topics

pytestmark = pytest.mark.kafka

IDLE_S = 3.0


async def test_an_idle_consumer_polls_and_fetches_rarely(
        kafka_bootstrap: str, unique: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    topic = TopicSpec(f"test.idle.{unique}", "idle", KeyKind.CASE, partitions=3)
    await create_topics(kafka_bootstrap, [topic])
    polls: list[float] = []
    fetches: list[float] = []
    getmany, send = AIOKafkaConsumer.getmany, AIOKafkaClient.send

    async def counted_getmany(self: Any, *args: Any, **kwargs: Any) -> Any:
        polls.append(asyncio.get_running_loop().time())
        return await getmany(self, *args, **kwargs)

    async def counted_send(self: Any, node_id: Any, request: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("FetchRequest"):
            fetches.append(asyncio.get_running_loop().time())
        return await send(self, node_id, request, **kwargs)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", counted_getmany)
    monkeypatch.setattr(AIOKafkaClient, "send", counted_send)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, group_prefix=f"idle-{unique}")
    spec = ConsumerSpec("idle", (topic,))
    engine = create_db_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    runtime = ConsumerRuntime(spec, Processor(spec, engine, RetrySettings(), producer="test"),
                              kafka, on_committed=lambda: None)
    broker = build_broker(kafka, graceful_timeout=5.0)
    runtime.subscribe(broker)
    await broker.start()
    try:
        await wait_for(lambda: bool(runtime.subscriber.consumer.assignment()), timeout_s=60,
                       what="joined the group, partitions assigned")
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(IDLE_S)
        end = asyncio.get_running_loop().time()
    finally:
        await broker.stop()
        engine.dispose()
    per_s = {name: sum(start <= t < end for t in times) / IDLE_S
             for name, times in (("polls", polls), ("fetches", fetches))}
    assert per_s["polls"] > 0, per_s  # it was running
    assert per_s["fetches"] > 0, per_s
    # one poll per batch_timeout_ms (500 ms: 2/s; FastStream's own loop, 20 ms and as
    # long asleep, made it 25/s); 100 ms fetches: <= 10/s
    assert per_s["polls"] <= 4, per_s
    assert per_s["fetches"] <= 15, per_s
