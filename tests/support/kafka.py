"""Helpers for tests against the real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from hub.dlq import partitions_of
from schemas.envelope import Envelope
from schemas.topics import TopicSpec
from schemas.wire import encode


async def create_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, s.partitions, 1) for s in specs for n in (s.name, s.dlq)
               if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def partition_counts(bootstrap: str, spec: TopicSpec) -> dict[str, int]:
    """How many partitions the metadata shows for ``spec`` and its dead-letter twin."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"])
                for t in await admin.describe_topics([spec.name, spec.dlq])}
    finally:
        await admin.close()


async def group_is_stable_with(bootstrap: str, group_id: str, members: int) -> bool:
    """Whether ``group_id`` has ``members`` members and its partitions assigned (Stable).
    No coordinator yet (the offsets topic still being made or moved) also means not yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group_id])
        [group] = response.to_object()["groups"]
        return bool(group["state"] == "Stable" and len(group["members"]) == members)
    except KafkaError:
        return False
    finally:
        await admin.close()


async def topic_configs(bootstrap: str, topic: str, **kafka: Any) -> dict[str, str]:
    """The topic's configuration as the broker reports it (defaults included)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)])
        [resource] = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, envelopes: Sequence[Envelope[Any]],
                  **client: Any) -> None:
    """``client``: more aiokafka arguments (security: KafkaSettings.aiokafka_kwargs())."""
    producer = AIOKafkaProducer(**{"bootstrap_servers": bootstrap, **client}, acks="all",
                                linger_ms=5, enable_idempotence=True)
    await producer.start()
    try:
        futures = []
        for env in envelopes:
            key, value, headers = encode(env)
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes,
                      list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def committed_count(bootstrap: str, group_id: str, topic: str) -> int:
    """The offsets ``group_id`` has committed on ``topic``, summed over its partitions (on a
    new topic: how many of its records the group is done with)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions_of(consumer, [topic])
        consumer.assign(parts)
        return sum([await consumer.committed(tp) or 0 for tp in parts])
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, *, expect: int | None = None,
                   timeout_s: float = 30.0, **client: Any) -> list[Any]:
    """Every record of ``topic``; with ``expect``, waits until at least that many arrived."""
    consumer = AIOKafkaConsumer(**{"bootstrap_servers": bootstrap, **client}, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        parts = await partitions_of(consumer, [topic])
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
            if expect is None:
                end = await consumer.end_offsets(parts)
                positions = {tp: await consumer.position(tp) for tp in parts}
                if all(positions[tp] >= end[tp] for tp in parts):
                    break
            elif len(records) >= expect:
                break
    finally:
        await consumer.stop()
    return records
