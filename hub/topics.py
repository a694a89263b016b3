"""``hub topics apply``: make the cluster's topics match schemas/topics.py.

Creates what is missing (each topic and its dead-letter twin), adds partitions
where the declaration has more (Kafka cannot remove them), and sets retention.
Replication is three where the cluster has three brokers, else what it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.new_partitions import NewPartitions

from hub.settings import KafkaSettings
from schemas.topics import ALL_TOPICS, TopicSpec

__all__ = ["TopicReport", "apply_topics"]


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
