"""``hub topics apply``: make the cluster's topics match schemas/topics.py and the settings.

Creates what is missing (each topic and its dead-letter twin), adds partitions where the
declaration has more (Kafka cannot remove them), and sets retention and durability.
Partitions and retention come from the declaration unless ``HUB_KAFKA__TOPICS`` or
``HUB_KAFKA__TOPIC_DEFAULTS`` say otherwise. New topics get three replicas where the
cluster has three brokers or more, else one per broker (``HUB_KAFKA__REPLICATION_FACTOR``
to choose); every topic gets ``min.insync.replicas`` of its replicas less one, at most
``HUB_KAFKA__MIN_INSYNC_REPLICAS`` (2), and no unclean leader election: with acks=all a
record is acknowledged once two replicas have it, and one broker may be down. Returns
once every topic's partitions have leaders in the cluster's metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.new_partitions import NewPartitions
from aiokafka.errors import for_code
from aiokafka.structs import OffsetAndMetadata

from hub.dlq import partitions_of
from hub.settings import KafkaSettings, TopicSettings
from schemas.topics import ALL_TOPICS, TopicSpec

__all__ = ["TopicPlan", "TopicReport", "TopicsError", "apply_topics", "durability_configs",
           "start_new_groups_at_end", "topic_plans"]

TOPIC_ALREADY_EXISTS = 36


class TopicsError(RuntimeError):
    """The cluster refused or cannot hold the declared topics; the message says why."""


@dataclass(frozen=True)
class TopicPlan:
    """What one topic (or dead-letter twin) should be: its partitions and configs, except
    the durability configs, which depend on its replicas (:func:`durability_configs`)."""

    name: str
    partitions: int
    retention_ms: int

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replication: int = 1
    under_replicated: list[str] = field(default_factory=list)
    """Existing topics with fewer replicas than new ones get (Kafka cannot add replicas by
    a config: reassign their partitions with kafka-reassign-partitions)."""


def topic_plans(kafka: KafkaSettings,
                topics: Sequence[TopicSpec] = ALL_TOPICS) -> list[TopicPlan]:
    """Each topic then its dead-letter twin, sized by the settings where they say so."""
    plans: list[TopicPlan] = []
    defaults = kafka.topic_defaults
    for spec in topics:
        own = kafka.topics.get(spec.name, TopicSettings())
        partitions = own.partitions or defaults.partitions or spec.partitions
        plans.append(TopicPlan(spec.name, partitions,
                               own.retention_ms or defaults.retention_ms or spec.retention_ms))
        plans.append(TopicPlan(spec.dlq, partitions, own.dlq_retention_ms
                               or defaults.dlq_retention_ms or spec.dlq_retention_ms))
    return plans


def durability_configs(kafka: KafkaSettings, replicas: int) -> dict[str, str]:
    """``min.insync.replicas`` for a topic of ``replicas`` replicas: one less than them (so
    that one broker may be down), at most ``kafka.min_insync_replicas``, at least one."""
    min_isr = max(1, min(kafka.min_insync_replicas, replicas - 1))
    return {"min.insync.replicas": str(min_isr), "unclean.leader.election.enable": "false"}


async def apply_topics(kafka: KafkaSettings, topics: Sequence[TopicSpec] = ALL_TOPICS, *,
                       wait_s: float = 60.0) -> TopicReport:
    report = TopicReport()
    wanted = {plan.name: plan for plan in topic_plans(kafka, topics)}
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        replication = kafka.replication_factor or min(3, brokers)
        if replication > brokers:
            raise TopicsError(f"HUB_KAFKA__REPLICATION_FACTOR is {replication}, but the "
                              f"cluster has {brokers} broker(s)")
        report.replication = replication
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, plan.partitions, replication,
                            topic_configs={**plan.configs(),
                                           **durability_configs(kafka, replication)})
                   for name, plan in wanted.items() if name not in existing]
        if missing:
            response = await admin.create_topics(missing)
            _raise_errors("create", [(e[0], e[1], e[2] if len(e) > 2 else None)
                                     for e in response.topic_errors
                                     if e[1] != TOPIC_ALREADY_EXISTS])
            report.created = [t.name for t in missing]
        present = [name for name in wanted if name in existing]
        if present:
            described = await admin.describe_topics(present)
            grow = {}
            configs = []
            for topic in described:
                name, parts = topic["topic"], topic["partitions"]
                if len(parts) < wanted[name].partitions:
                    grow[name] = NewPartitions(wanted[name].partitions)
                replicas = min((len(p["replicas"]) for p in parts), default=replication)
                if replicas < replication:
                    report.under_replicated.append(name)
                configs.append(ConfigResource(
                    ConfigResourceType.TOPIC, name,
                    configs={**wanted[name].configs(), **durability_configs(kafka, replicas)}))
            if grow:
                await admin.create_partitions(grow)
                report.grown = sorted(grow)
            for response in await admin.alter_configs(configs):
                _raise_errors("configure", [(r[3], r[0], r[1]) for r in response.resources])
            report.unchanged = sorted(set(present) - set(report.grown))
        await _wait_for_leaders(admin, {name: plan.partitions for name, plan in wanted.items()},
                                wait_s)
    finally:
        await admin.close()
    return report


def _raise_errors(action: str, errors: list[tuple[str, int, Any]]) -> None:
    failed = [f"{topic}: {for_code(code).__name__}{f' ({msg})' if msg else ''}"
              for topic, code, msg in errors if code]
    if failed:
        raise TopicsError(f"the cluster refused to {action} topics: {'; '.join(failed)}")


async def _wait_for_leaders(admin: AIOKafkaAdminClient, partitions: dict[str, int],
                            wait_s: float) -> None:
    """Until the metadata shows every topic with its partitions, each with a leader: a
    topic just created or grown is in the metadata a little later (bounded by ``wait_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        described = {t["topic"]: t for t in await admin.describe_topics(list(partitions))}
        lagging = sorted(
            name for name, count in partitions.items()
            if name not in described or described[name]["error_code"]
            or len(described[name]["partitions"]) < count
            or any(p["leader"] < 0 for p in described[name]["partitions"]))
        if not lagging:
            return
        if loop.time() >= deadline:
            raise TopicsError(f"after {wait_s:g} s the cluster's metadata still lacks "
                              f"partitions or leaders of {', '.join(lagging[:5])}")
        await asyncio.sleep(0.2)


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
