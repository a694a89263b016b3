"""`hub topics apply` against the real broker, and the generated AsyncAPI / JSON Schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from hub.settings import KafkaSettings
from hub.topics import apply_topics
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import ROOT


@pytest.mark.kafka
async def test_apply_creates_twins_then_grows_and_is_idempotent(kafka_bootstrap: str,
                                                                unique: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    spec = TopicSpec(f"t{unique}.cases", "test", KeyKind.CASE, partitions=2,
                     retention_ms=3_600_000)
    first = await apply_topics(kafka, [spec])
    assert sorted(first.created) == [spec.name, spec.dlq]
    again = await apply_topics(kafka, [spec])
    assert (again.created, again.grown) == ([], [])
    grown = await apply_topics(kafka, [replace(spec, partitions=4)])
    assert grown.grown == sorted([spec.name, spec.dlq])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"])
                     for t in await admin.describe_topics([spec.name, spec.dlq])}
    finally:
        await admin.close()
    assert described == {spec.name: 4, spec.dlq: 4}


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
