"""`hub topics apply` against the real broker, and the generated AsyncAPI / JSON Schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import KafkaSettings, TopicSettings, load_settings
from hub.topics import apply_topics, durability_configs, topic_plans
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import ROOT, wait_for
from tests.support.kafka import partition_counts, topic_configs


async def partition_counts_are(bootstrap: str, spec: TopicSpec, count: int) -> bool:
    return await partition_counts(bootstrap, spec) == {spec.name: count, spec.dlq: count}


@pytest.mark.kafka
async def test_apply_creates_twins_then_grows_and_is_idempotent(kafka_bootstrap: str,
                                                                unique: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    spec = TopicSpec(f"t{unique}.cases", "test", KeyKind.CASE, partitions=2,
                     retention_ms=3_600_000)
    first = await apply_topics(kafka, [spec])
    assert sorted(first.created) == [spec.name, spec.dlq]
    assert await partition_counts(kafka_bootstrap, spec) == {spec.name: 2, spec.dlq: 2}
    again = await apply_topics(kafka, [spec])
    assert (again.created, again.grown) == ([], [])
    grown = await apply_topics(kafka, [replace(spec, partitions=4)])
    assert grown.grown == sorted([spec.name, spec.dlq])
    # apply_topics returns once its own metadata shows the new partitions; another client's
    # view may follow a moment later, so the check waits for it (bounded), never sleeps.
    await wait_for(lambda: partition_counts_are(kafka_bootstrap, spec, 4), timeout_s=30,
                   what="4 partitions in the metadata")
    configs = await topic_configs(kafka_bootstrap, spec.name)
    assert configs["retention.ms"] == "3600000"
    # One broker: one replica, and a record needs only it (more would make it unwritable).
    assert configs["min.insync.replicas"] == "1"
    assert configs["unclean.leader.election.enable"] == "false"


async def test_partitions_and_retention_come_from_settings(kafka_bootstrap: str,
                                                           unique: str) -> None:
    spec = TopicSpec(f"t{unique}.sized", "test", KeyKind.CASE, partitions=2)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap,
                          topic_defaults=TopicSettings(partitions=3, retention_ms=7_200_000,
                                                       dlq_retention_ms=9_000_000))
    report = await apply_topics(kafka, [spec])
    assert report.replication == 1
    assert await partition_counts(kafka_bootstrap, spec) == {spec.name: 3, spec.dlq: 3}
    assert (await topic_configs(kafka_bootstrap, spec.name))["retention.ms"] == "7200000"
    assert (await topic_configs(kafka_bootstrap, spec.dlq))["retention.ms"] == "9000000"


def test_settings_size_a_declared_topic_and_refuse_an_unknown_one() -> None:
    kafka = KafkaSettings(topics={"proc.mail.requests": TopicSettings(partitions=12,
                                                                      retention_ms=86_400_000)})
    plans = {p.name: p for p in topic_plans(kafka)}
    assert plans["proc.mail.requests"].partitions == 12
    assert plans["proc.mail.requests.dlq"].partitions == 12
    assert plans["proc.mail.requests"].retention_ms == 86_400_000
    assert plans["proc.mail.requests.dlq"].retention_ms == 30 * 86_400_000  # declared
    assert plans["proc.erp.commands"].partitions == 6  # declared
    with pytest.raises(ValidationError, match=r"no topic named proc\.mail\.request is declared"):
        KafkaSettings(topics={"proc.mail.request": TopicSettings(partitions=3)})


def test_topic_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KAFKA__TOPICS", '{"proc.erp.commands": {"partitions": 9}}')
    monkeypatch.setenv("HUB_KAFKA__TOPIC_DEFAULTS__RETENTION_MS", "86400000")
    plans = {p.name: p for p in topic_plans(load_settings().kafka)}
    assert plans["proc.erp.commands"].partitions == 9
    assert plans["proc.erp.commands"].retention_ms == 86_400_000
    assert plans["proc.mail.requests"].retention_ms == 86_400_000


def test_min_insync_replicas_leave_room_for_one_broker_down() -> None:
    kafka = KafkaSettings()
    assert [durability_configs(kafka, r)["min.insync.replicas"] for r in (1, 2, 3, 5)] == \
        ["1", "1", "2", "2"]
    assert durability_configs(KafkaSettings(min_insync_replicas=3), 5)["min.insync.replicas"] \
        == "3"
    assert durability_configs(kafka, 3)["unclean.leader.election.enable"] == "false"


def test_hub_docs_writes_asyncapi_and_json_schemas(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hub.cli", "docs", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    channels = json.dumps(doc["channels"])
    for topic in ("proc.registration.commands", "proc.mail.requests", "proc.erp.commands",
                  "proc.surety.commands"):
        assert topic in channels
    schemas = json.dumps(doc["components"]["schemas"])
    assert "CardRegistrationRequested" in schemas
    names = {p.name for p in (tmp_path / "schemas").glob("*.json")}
    assert {"registration.card-registration-requested.v1.json", "mail.requested.v1.json",
            "erp.registration-requested.v1.json"} <= names
