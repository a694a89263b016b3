"""The audit trail (hub/audit.py) on SQLite and PostgreSQL: a hash chain that `hub audit
verify` checks and that names the first row edited or following a deleted one; rows in
the same transaction as their effect; concurrent writers never fork the chain; retention
keeps the chain verifiable; a dead-letter replay from the command line is recorded with
its operator."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.cli import main
from hub.db import OutboxRecord
from schemas.topics import KeyKind, TopicSpec
from tests.support.kafka import create_topics, publish_raw, read_all

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AU = audit.AuditRecord.__table__  # type: ignore[attr-defined]


def append(engine: Engine, count: int, start: datetime = T0, entity: str = "kawagoe-city"
           ) -> None:
    for n in range(count):
        with Session(engine) as tx, tx.begin():
            audit.record(tx, actor=f"staff{n}@city.kawagoe.example.jp", actor_kind="person",
                         role="contract-officer", entity=entity, action="contracts.search",
                         target="contracts", at=start + timedelta(minutes=n),
                         client="127.0.0.1")


def verify_cli(db_url: str, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    code = main(["audit", "verify"])
    out = capsys.readouterr()
    return code, orjson.loads(out.out), out.err


def test_verify_names_an_edited_row_and_the_row_after_a_deleted_one(
        engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    append(engine, 6)
    code, report, _ = verify_cli(db_url, monkeypatch, capsys)
    assert (code, report["ok"], report["checked"]) == (0, True, 6)
    with Session(engine) as db:
        ids = [r.id for r in reversed(audit.rows(db))]

    with engine.begin() as conn:  # someone edits who did it
        conn.execute(sa.update(AU).where(AU.c.id == ids[2]).values(actor="nobody@example.jp"))
    code, report, err = verify_cli(db_url, monkeypatch, capsys)
    assert (code, report["ok"], report["broken_id"]) == (1, False, ids[2])
    assert f"row {ids[2]}" in err
    assert "edited" in err
    with engine.begin() as conn:
        conn.execute(sa.update(AU).where(AU.c.id == ids[2]).values(
            actor="staff2@city.kawagoe.example.jp"))
    assert verify_cli(db_url, monkeypatch, capsys)[0] == 0  # put back, it holds again

    with engine.begin() as conn:  # someone deletes a row
        conn.execute(sa.delete(AU).where(AU.c.id == ids[3]))
    code, report, err = verify_cli(db_url, monkeypatch, capsys)
    assert (code, report["broken_id"]) == (1, ids[4])
    assert f"row {ids[4]}" in err
    assert "deleted" in err


def test_the_row_is_written_with_its_effect_or_not_at_all(engine: Engine) -> None:
    def step() -> None:
        with Session(engine) as tx, tx.begin():
            tx.add(OutboxRecord(topic="t", key=None, value=b"v", headers="[]", created_at=T0))
            audit.record(tx, actor="a@example.jp", actor_kind="person", action="x",
                         target="y", at=T0)
            raise RuntimeError("the step fails after both were written")

    with pytest.raises(RuntimeError):
        step()
    with Session(engine) as db:
        assert audit.rows(db) == []
        assert audit.verify(db).ok


def test_concurrent_writers_keep_one_chain(pg_engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            append(pg_engine, 25, entity=f"entity-{k}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Session(pg_engine) as db:
        report = audit.verify(db)
    assert (report.ok, report.checked) == (True, 100), report.reason


def test_retention_prunes_old_rows_and_the_chain_still_verifies(engine: Engine) -> None:
    append(engine, 5, start=T0)
    append(engine, 3, start=T0 + timedelta(days=400))
    with Session(engine) as db, db.begin():
        removed = audit.prune(db, retention=timedelta(days=365), now=T0 + timedelta(days=401),
                              actor="cli:test")
    assert removed == 5
    with Session(engine) as db:
        kept = list(reversed(audit.rows(db)))
        report = audit.verify(db)
    assert [r.action for r in kept] == ["contracts.search"] * 3 + [audit.PRUNED]
    assert (report.ok, report.checked) == (True, 4), report.reason
    with engine.begin() as conn:  # deleting the first kept row is still seen
        conn.execute(sa.delete(AU).where(AU.c.id == kept[0].id))
    with Session(engine) as db:
        assert audit.verify(db).broken_id == kept[1].id


def test_entity_filter_matches_single_and_joined_entities(engine: Engine) -> None:
    append(engine, 1, entity="kawagoe-city")
    append(engine, 1, entity="saitama-pref")
    append(engine, 1, entity="kawagoe-city,saitama-pref")
    append(engine, 1, entity="kawagoe-city-east")
    with Session(engine) as db:
        assert [r.entity for r in audit.rows(db, entities=["kawagoe-city"])] == [
            "kawagoe-city,saitama-pref", "kawagoe-city"]
        assert [r.entity for r in audit.rows(db, entities=["saitama-pref"])] == [
            "kawagoe-city,saitama-pref", "saitama-pref"]


def test_a_dead_letter_replay_is_recorded_with_its_operator(
        kafka_bootstrap: str, unique: str, db_url: str, engine: Engine,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TopicSpec(f"test.audit.{unique}", "audit test", KeyKind.CASE, partitions=1)
    asyncio.run(create_topics(kafka_bootstrap, [spec]))
    value = orjson.dumps({"procuring_entity": "kawagoe-city", "payload": {}})
    asyncio.run(publish_raw(kafka_bootstrap, spec.dlq, [(b"k", value, [
        ("x-dlq-original-topic", spec.name.encode()), ("x-dlq-reason", b"poison")])]))
    monkeypatch.setenv("HUB_DATABASE_URL", db_url)
    monkeypatch.setenv("HUB_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert main(["dlq", "replay", "--topic", spec.name, f"{spec.dlq}/0/0"]) == 0
    assert orjson.loads(capsys.readouterr().out)["replayed"] == 1
    (back,) = asyncio.run(read_all(kafka_bootstrap, spec.name, expect=1))
    assert back.value == value
    with Session(engine) as db:
        (row,) = audit.rows(db)
    assert (row.action, row.target, row.entity, row.role, row.actor_kind) == (
        "dlq.replay", f"{spec.dlq}/0/0", "kawagoe-city", "admin", "operator")
    assert row.actor.startswith("cli:")
