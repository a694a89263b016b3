"""storage.bulk against real databases: a COPY (PostgreSQL) stores exactly what an INSERT
stores, failures surface as SQLAlchemy's errors, and ids and id lists work on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.types.array import ListBinaryDumper
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.db import OutboxRecord, ProcessedMessage
from pipelines.registration.models import ContractorRow, PendingPropagationRow
from schemas.registration import Contact
from storage.bulk import any_of, insert_rows, json_of, matching, next_ids

PENDING_PROPAGATIONS: sa.Table = PendingPropagationRow.__table__  # type: ignore[attr-defined]
CONTRACTORS: sa.Table = ContractorRow.__table__  # type: ignore[attr-defined]
OUTBOX: sa.Table = OutboxRecord.__table__  # type: ignore[attr-defined]
PROCESSED: sa.Table = ProcessedMessage.__table__  # type: ignore[attr-defined]
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
        insert_rows(session, PENDING_PROPAGATIONS, copied)
        session.execute(sa.insert(PENDING_PROPAGATIONS), inserted)
    rows = stored(engine, PENDING_PROPAGATIONS, PENDING_PROPAGATIONS.c.attempts)
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
            ids = next_ids(session, OUTBOX, 3)
            assert ids == sorted(ids)
            assert len(set(ids)) == 3
            rows = [{"id": i, "topic": "t", "key": None, "value": v, "headers": "[]",
                     "created_at": WHEN} for i, v in zip(ids, values, strict=True)]
        else:
            rows = [{"topic": "t", "key": None, "value": v, "headers": "[]",
                     "created_at": WHEN} for v in values]
        insert_rows(session, OUTBOX, rows)
    back = stored(engine, OUTBOX, OUTBOX.c.id)
    assert [r["value"] for r in back] == values
    assert [r["key"] for r in back] == [None] * 3
    with Session(engine) as session:
        some = session.execute(sa.select(OUTBOX.c.value).where(
            any_of(session, OUTBOX.c.id, [back[0]["id"], back[2]["id"]])).order_by(OUTBOX.c.id))
        assert list(some.scalars()) == [values[0], values[2]]


def test_ids_come_from_the_tables_sequence_named_once(pg_engine: Engine) -> None:
    """next_ids (PostgreSQL only) takes the ids an INSERT without id would take, from one
    sequence named once per database: not nextval(pg_get_serial_sequence(...)) for every
    id (14 ms for a batch's 6,000 outbox ids against 3 ms)."""
    engine = pg_engine
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with Session(engine) as session, session.begin():
            first = next_ids(session, OUTBOX, 5)
            second = next_ids(session, OUTBOX, 500)
            session.execute(sa.insert(OUTBOX).values(topic="t", key=None, value=b"v",
                                                 headers="[]", created_at=WHEN))
            last = session.execute(sa.select(sa.func.max(OUTBOX.c.id))).scalar_one()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len(set(first + second)) == 505
    assert max(first) < min(second) < max(second) < last
    nextvals = [s for s in statements if "nextval" in s]
    assert len(nextvals) == 2
    assert not any("pg_get_serial_sequence" in s for s in nextvals)


def test_lists_are_bound_as_binary_arrays(pg_engine: Engine) -> None:
    """A batch's look-ups bind arrays of thousands of values: binary (hub.db), not text
    arrays psycopg quotes value by value in Python. Every kind of value comes back."""
    texts = ['a"b', "c\\d", "{値,}", "", " x ", "NULL", None]
    numbers = [0, -1, 2**40, 7]
    with pg_engine.connect() as conn:
        dumper = conn.connection.dbapi_connection.adapters.get_dumper(  # type: ignore[union-attr]
            list, psycopg.adapt.PyFormat.AUTO)
        assert dumper is ListBinaryDumper
        for values, item in ((texts, sa.String()), (numbers, sa.BigInteger()), ([], sa.String())):
            back = conn.execute(sa.select(sa.func.unnest(
                sa.bindparam("p", values, type_=ARRAY(item))))).scalars().all()
            assert back == values


def test_a_duplicate_key_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    """The Processor tells a concurrent duplicate (IntegrityError) from a bug by this."""
    row = {"consumer": "c", "message_id": "m-1", "outcome": "done", "processed_at": WHEN}
    with Session(engine) as session, session.begin():
        insert_rows(session, PROCESSED, [row])
    with pytest.raises(sa.exc.IntegrityError), Session(engine) as session, session.begin():
        insert_rows(session, PROCESSED, [{**row, "message_id": "m-2"}, row])
    assert [r["message_id"] for r in stored(engine, PROCESSED, PROCESSED.c.message_id)] == ["m-1"]


def test_nothing_to_insert_is_no_statement(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        insert_rows(session, PROCESSED, [])
        assert next_ids(session, OUTBOX, 0) == []
    assert stored(engine, PROCESSED, PROCESSED.c.message_id) == []


def test_matching_finds_the_rows_of_the_values_and_the_condition(engine: Engine) -> None:
    rows = [propagation(i, network="saitama" if i % 2 else "tokyo") for i in range(6)]
    with Session(engine) as session, session.begin():
        insert_rows(session, PENDING_PROPAGATIONS, rows)
    with Session(engine) as session:
        found = session.execute(matching(session, PENDING_PROPAGATIONS,
                                         PENDING_PROPAGATIONS.c.propagation_id,
                                         ["p-1", "p-2", "p-3", "p-9"],
                                         equal={PENDING_PROPAGATIONS.c.network: "saitama"})).all()
    assert sorted(r.propagation_id for r in found) == ["p-1", "p-3"]


def test_matching_probes_the_index_on_a_table_without_statistics(pg_engine: Engine) -> None:
    """A registry filling up faster than autovacuum analyzes it: `network = :n AND user_id =
    ANY(:array)` was planned as a scan of the network's every contractor (the index on
    (network, user_id) used for the network only), per batch. The plan checked is the
    generic one, which the driver's prepared statement uses from its sixth execution on."""
    now = datetime.now(UTC)
    with Session(pg_engine) as session, session.begin():
        insert_rows(session, CONTRACTORS, [
            {"network": "saitama", "user_id": f"{7_000_000_000 + i}", "company_id": f"{i:016d}",
             "company_name": f"北東{i}建設株式会社", "company_key": f"key-{i}",
             "corporate_number": None, "representative_contact": None, "created_at": now}
            for i in range(5000)])
    wanted = [f"{7_000_000_000 + i}" for i in range(0, 5000, 10)]
    with Session(pg_engine) as session:
        query = matching(session, CONTRACTORS, CONTRACTORS.c.user_id, wanted,
                         equal={CONTRACTORS.c.network: "saitama"})
        assert len(session.execute(query).all()) == 500
        compiled = query.compile(dialect=pg_engine.dialect)
        names = list(compiled.params)
        text = str(compiled) % {n: f"${i}" for i, n in enumerate(names, start=1)}
        conn = session.connection()
        conn.exec_driver_sql("set plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"prepare probe as {text}".replace("%", "%%"))
        args = ", ".join(f"%({n})s" for n in names)
        with psycopg.ClientCursor(conn.connection.driver_connection) as cursor:
            cursor.execute(f"explain execute probe({args})", compiled.params)
            plan = [row[0] for row in cursor.fetchall()]
    assert not any("Seq Scan on reg_contractor" in line for line in plan), plan
    probes = [line for line in plan if "Index Cond" in line]
    assert any("user_id" in line and "network" in line for line in probes), plan


def test_json_columns_take_what_json_dumps_takes_and_fragments(engine: Engine) -> None:
    """The engines' JSON serializer is orjson (hub.db.json_text): keys that are not strings
    become strings as with json.dumps, Japanese text stays, a fragment is written as is."""
    rows = [propagation(1, scheduled={1: "一", "k": [None, 2.5]}),
            propagation(2, scheduled=json_of(CONTACT))]
    with Session(engine) as session, session.begin():
        session.execute(sa.insert(PENDING_PROPAGATIONS), rows[:1])
        insert_rows(session, PENDING_PROPAGATIONS, rows[1:])
    back = stored(engine, PENDING_PROPAGATIONS, PENDING_PROPAGATIONS.c.attempts)
    assert back[0]["scheduled"] == {"1": "一", "k": [None, 2.5]}
    assert back[1]["scheduled"] == CONTACT.model_dump(mode="json")
