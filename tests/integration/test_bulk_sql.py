"""pipelines.bulk against real databases: a COPY (PostgreSQL) stores exactly what an INSERT
stores, failures surface as SQLAlchemy's errors, and ids and id lists work on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.db import OutboxRecord, ProcessedMessage
from pipelines.bulk import any_of, insert_rows, json_of, next_ids
from pipelines.registration.models import PendingPropagationRow
from schemas.registration import Contact

PT: sa.Table = PendingPropagationRow.__table__  # type: ignore[attr-defined]
OB: sa.Table = OutboxRecord.__table__  # type: ignore[attr-defined]
PM: sa.Table = ProcessedMessage.__table__  # type: ignore[attr-defined]
WHEN = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
CONTACT = Contact(contact_name="工務部", postal_code="330-0063",
                  address="さいたま市浦和区高砂3-15-1", person_name="山田 太郎",
                  phone="048-824-2111", email="yamada@example.jp")


def propagation(i: int, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "propagation_id": f"p-{i}", "kind": "registration", "network": "saitama",
        "target_entity": "kawagoe-city", "domain": "工事", "user_id": f"{7_000_000_000 + i}",
        "immediate": i % 2 == 0, "status": "pending", "attempts": i, "note": "ノート\n'\"\\",
        "due_at": WHEN + timedelta(days=i), "scheduled": {"k": [1, "二", None], "n": 1.5},
        "created_at": WHEN, "done_at": None}
    row.update(over)
    return row


def stored(engine: Engine, table: sa.Table,
           order: sa.ColumnElement[Any]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(order))]


def test_copy_stores_what_an_insert_stores(engine: Engine) -> None:
    copied = [propagation(i) for i in range(3)]
    inserted = [propagation(i + 10) for i in range(3)]
    copied.append(propagation(3, scheduled=json_of(CONTACT), done_at=WHEN))
    inserted.append(propagation(13, scheduled=CONTACT.model_dump(mode="json"), done_at=WHEN))
    with Session(engine) as session, session.begin():
        insert_rows(session, PT, copied)
        session.execute(sa.insert(PT), inserted)
    rows = stored(engine, PT, PT.c.attempts)
    assert len(rows) == 8
    for a, b in zip(rows[:4], rows[4:], strict=True):
        assert {k: v for k, v in a.items() if k not in ("propagation_id", "user_id", "attempts",
                                                          "immediate", "due_at")} \
            == {k: v for k, v in b.items() if k not in ("propagation_id", "user_id", "attempts",
                                                          "immediate", "due_at")}
    assert rows[3]["scheduled"] == CONTACT.model_dump(mode="json")
    assert rows[0]["note"] == "ノート\n'\"\\"
    assert rows[1]["due_at"].astimezone(UTC) == WHEN + timedelta(days=1)
    assert [r["immediate"] for r in rows[:3]] == [True, False, True]


def test_copy_of_bytes_and_ids_from_the_sequence(engine: Engine) -> None:
    values = [bytes(range(256)), "値".encode() * 1000, b""]
    with Session(engine) as session, session.begin():
        if engine.dialect.name == "postgresql":
            ids = next_ids(session, OB, 3)
            assert ids == sorted(ids)
            assert len(set(ids)) == 3
            rows = [{"id": i, "topic": "t", "key": None, "value": v, "headers": "[]",
                     "created_at": WHEN} for i, v in zip(ids, values, strict=True)]
        else:
            rows = [{"topic": "t", "key": None, "value": v, "headers": "[]",
                     "created_at": WHEN} for v in values]
        insert_rows(session, OB, rows)
    back = stored(engine, OB, OB.c.id)
    assert [r["value"] for r in back] == values
    assert [r["key"] for r in back] == [None] * 3
    with Session(engine) as session:
        some = session.execute(sa.select(OB.c.value).where(
            any_of(session, OB.c.id, [back[0]["id"], back[2]["id"]])).order_by(OB.c.id))
        assert list(some.scalars()) == [values[0], values[2]]


def test_a_duplicate_key_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    """The Processor tells a concurrent duplicate (IntegrityError) from a bug by this."""
    row = {"consumer": "c", "message_id": "m-1", "outcome": "done", "processed_at": WHEN}
    with Session(engine) as session, session.begin():
        insert_rows(session, PM, [row])
    with pytest.raises(sa.exc.IntegrityError), Session(engine) as session, session.begin():
        insert_rows(session, PM, [{**row, "message_id": "m-2"}, row])
    assert [r["message_id"] for r in stored(engine, PM, PM.c.message_id)] == ["m-1"]


def test_nothing_to_insert_is_no_statement(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        insert_rows(session, PM, [])
        assert next_ids(session, OB, 0) == []
    assert stored(engine, PM, PM.c.message_id) == []
