"""Which Kafka a benchmark runs on, and how its clients reach it.

``BENCH_KAFKA`` chooses:
- ``plain`` (default): the test broker, ``HUB_TEST_KAFKA`` (127.0.0.1:9092), PLAINTEXT;
- ``secure``: the secured broker of ``deploy/kafka.sh --secure`` (``HUB_TEST_KAFKA_SECURE``,
  127.0.0.1:9192): TLS and SCRAM-SHA-512 as the hub's principal, its password and the CA
  from ``HUB_TEST_KAFKA_SECURE_DIR`` (default .run/kafka-secure);
- ``cluster``: the brokers in ``BENCH_KAFKA_BOOTSTRAP`` (``deploy/kafka.sh --brokers 3``),
  PLAINTEXT.
Every client of a run (driver, hub, collector) uses the same. Topics are named
``proc.bench.<tag>...`` and consumer groups ``hub.bench-<tag>...``: the secured broker's
ACLs let the hub's principal use exactly those prefixes (proc.* and hub.*).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.settings import KafkaSettings
from hub.topics import durability_configs

ROOT = Path(__file__).resolve().parents[1]
TOPIC_PREFIX = "proc.bench"
GROUP_PREFIX = "hub.bench"


def mode() -> str:
    return os.environ.get("BENCH_KAFKA", "plain")


def kafka_settings(**kw: Any) -> KafkaSettings:
    """The hub's Kafka settings for this run's broker (``kw``: more, e.g. group_prefix)."""
    chosen = mode()
    if chosen == "secure":
        secrets = Path(os.environ.get("HUB_TEST_KAFKA_SECURE_DIR",
                                      ROOT / ".run" / "kafka-secure"))
        return KafkaSettings(
            bootstrap_servers=os.environ.get("HUB_TEST_KAFKA_SECURE", "127.0.0.1:9192"),
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
            sasl_username="hub",
            sasl_password=(secrets / "credentials" / "hub.password").read_text().strip(),
            ssl_cafile=secrets / "tls" / "ca.pem", **kw)
    if chosen == "cluster":
        return KafkaSettings(bootstrap_servers=os.environ["BENCH_KAFKA_BOOTSTRAP"], **kw)
    if chosen != "plain":
        raise SystemExit(f"BENCH_KAFKA={chosen!r}: plain, secure or cluster")
    return KafkaSettings(bootstrap_servers=os.environ.get("HUB_TEST_KAFKA", "127.0.0.1:9092"),
                         **kw)


def client_kwargs() -> dict[str, Any]:
    """aiokafka arguments: bootstrap servers and, on the secured broker, TLS and SCRAM."""
    return kafka_settings().aiokafka_kwargs()


def describe() -> str:
    return {"plain": "PLAINTEXT", "secure": "SASL_SSL (TLS 1.3, SCRAM-SHA-512), ACLs",
            "cluster": "PLAINTEXT, 3-broker KRaft cluster"}[mode()]


async def create_topics(names: list[str], partitions: int = 6) -> None:
    """The run's topics, replicated as ``hub topics apply`` would on this cluster."""
    admin = AIOKafkaAdminClient(**client_kwargs())
    await admin.start()
    try:
        replicas = min(3, len((await admin.describe_cluster())["brokers"]))
        await admin.create_topics([
            NewTopic(t, partitions, replicas,
                     topic_configs=durability_configs(KafkaSettings(), replicas))
            for t in names])
    finally:
        await admin.close()
