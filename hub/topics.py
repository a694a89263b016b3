"""``hub topics apply``: make the cluster's topics match schemas/topics.py.

Creates what is missing (each topic and its dead-letter twin), adds partitions
where the declaration has more (Kafka cannot remove them), and sets retention.
Replication is three where the cluster has three brokers, else what it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.new_partitions import NewPartitions
from aiokafka.structs import OffsetAndMetadata

from hub.dlq import partitions_of
from hub.settings import KafkaSettings
from schemas.topics import ALL_TOPICS, TopicSpec

__all__ = ["TopicReport", "apply_topics", "start_new_groups_at_end"]


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


async def apply_topics(kafka: KafkaSettings,
                       topics: Sequence[TopicSpec] = ALL_TOPICS) -> TopicReport:
    report = TopicReport()
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replication = min(3, len(cluster["brokers"]))
        wanted: dict[str, tuple[int, dict[str, str]]] = {}
        for spec in topics:
            wanted[spec.name] = (spec.partitions, spec.configs())
            wanted[spec.dlq] = (spec.partitions, spec.dlq_configs())
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, parts, replication, topic_configs=cfg)
                   for name, (parts, cfg) in wanted.items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
            report.created = [t.name for t in missing]
        present = [name for name in wanted if name in existing]
        if present:
            described = await admin.describe_topics(present)
            grow = {}
            for topic in described:
                name, have = topic["topic"], len(topic["partitions"])
                if have < wanted[name][0]:
                    grow[name] = NewPartitions(wanted[name][0])
            if grow:
                await admin.create_partitions(grow)
                report.grown = sorted(grow)
            await admin.alter_configs([
                ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted[name][1])
                for name in present
            ])
            report.unchanged = sorted(set(present) - set(report.grown))
    finally:
        await admin.close()
    return report


async def start_new_groups_at_end(kafka: KafkaSettings, consumers: Sequence[str],
                                  topics: Sequence[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Commit the topics' end offsets for those of ``consumers`` whose group has none yet.

    A new consumer group reads from the start (``auto_offset_reset=earliest``, so that a
    real deployment never skips a message published before its first start). A throw-away
    local hub (``hub demo`` on a fresh run directory, a test's own hub) would instead
    replay every earlier run's commands on the broker: their mails, ERP registrations and
    cases. Groups that already have offsets keep them. Returns the groups started at the end.
    """
    probe = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
    await probe.start()
    try:
        parts = await partitions_of(probe, [t.name for t in topics])
        ends = await probe.end_offsets(parts)
    finally:
        await probe.stop()
    started: list[str] = []
    for name in consumers:
        group_id = f"{kafka.group_prefix}.{name}"
        group = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), group_id=group_id,
                                 enable_auto_commit=False)
        await group.start()
        try:
            group.assign(parts)
            committed = [await group.committed(tp) for tp in parts]
            if all(c is None for c in committed):
                await group.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
                started.append(group_id)
        finally:
            await group.stop()
    return started
