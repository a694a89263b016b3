"""The migrations (hub/migrations) build exactly the tables the models declare, on both
databases; they go down and up again; and the nightly propagation's query (REG-9, CHG-3,
RNW-8) reads the pending rows through their own partial index (migration 0006)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import hub.contract.models
import hub.db
import hub.gateway.models
import hub.leases
import pipelines.audit
import pipelines.contract.models
import pipelines.invoices.models
import pipelines.registration.models
import pipelines.surety.models
from hub.migrations import current_revision, upgrade
from pipelines.registration.models import PendingPropagationRow

pytestmark = [pytest.mark.postgres]

MODELS = (hub.db, hub.gateway.models, hub.leases, hub.contract.models, pipelines.contract.models,
          pipelines.invoices.models, pipelines.registration.models, pipelines.surety.models)


def head() -> str | None:

    from hub.migrations import _config

    return ScriptDirectory.from_config(_config(sa.create_engine("sqlite://"))).get_current_head()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return [d for d in compare_metadata(context, SQLModel.metadata)
                if not (d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_the_migrations_build_what_the_models_declare(engine: Engine) -> None:
    assert MODELS  # every module with tables is imported, so its tables are in the metadata
    assert differences(engine) == []


def test_down_to_0005_and_up_again(engine: Engine) -> None:
    from alembic import command

    from hub.migrations import _config

    command.downgrade(_config(engine), "0005_contract")
    assert current_revision(engine) == "0005_contract"
    names = {i["name"] for i in sa.inspect(engine).get_indexes("reg_pending_propagation")}
    assert "ix_reg_pending_propagation_status" in names
    upgrade(engine)
    assert current_revision(engine) == head()
    assert differences(engine) == []


def test_0008_keeps_finding_cases_already_sent_to_cloudsign(engine: Engine) -> None:
    """A case sent before the column existed is found by its CloudSign document after it."""
    from alembic import command

    from hub.migrations import _config

    command.downgrade(_config(engine), "0006_registration_indexes")
    now = datetime(2026, 12, 5, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO con_case (case_id, procuring_entity, route, status, subject, "
            "amount_yen, contractor_user_id, contractor_name, city_name, agreed, parties, "
            "opened_at, updated_at, state) VALUES ('R8-0001', 'city', 'cloudsign', "
            "'sent-to-cloudsign', 's', 1, 'U1', 'c', 'city', 0, 2, :now, :now, :state)"),
            {"now": now, "state": '{"cloudsign_document_id": "doc-1"}'})
    upgrade(engine)
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT case_id FROM con_case "
                                     "WHERE cloudsign_document_id = 'doc-1'")).scalar_one()
    assert found == "R8-0001"


def test_0020_gives_earlier_registration_answers_their_entity(engine: Engine) -> None:
    """Answers kept before the column existed are listed under the entity they name."""
    from alembic import command

    from hub.migrations import _config

    command.downgrade(_config(engine), "0016_review_audit_trail")
    now = datetime(2026, 12, 5, tzinfo=UTC)
    with engine.begin() as conn:
        for request_id, entity in (("r-1", "kawagoe-city"), ("r-2", "saitama-pref")):
            conn.execute(sa.text(
                "INSERT INTO gw_outcome (request_id, message_type, payload, received_at) "
                "VALUES (:id, 'registration.rejected', :payload, :now)"),
                {"id": request_id, "now": now, "payload": json.dumps(
                    {"procuring_entity": entity, "violations": []})})
    upgrade(engine)
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text(  # type: ignore[arg-type]
            "SELECT request_id, procuring_entity FROM gw_outcome")).all())
    assert found == {"r-1": "kawagoe-city", "r-2": "saitama-pref"}
    assert differences(engine) == []


def test_the_propagation_query_reads_the_pending_rows_by_their_index(pg_engine: Engine) -> None:
    table = PendingPropagationRow.__table__  # type: ignore[attr-defined]
    now = datetime(2026, 12, 5, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"propagation_id": f"p-{i:05d}", "kind": "register", "network": "n",
         "target_entity": "kawagoe-city", "domain": "工事", "user_id": f"{i:010d}",
         "immediate": False, "status": "done" if i % 50 else "pending", "attempts": 0,
         "note": "", "due_at": now, "scheduled": {}, "created_at": now}
        for i in range(5_000)]
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(table), rows)
        conn.execute(sa.text("analyze reg_pending_propagation"))
        plan = "\n".join(conn.execute(sa.text(
            "explain select * from reg_pending_propagation where status = 'pending' "
            "and due_at <= :now order by due_at, propagation_id limit 100"),
            {"now": now}).scalars())
    assert "ix_reg_pending_propagation_due" in plan, plan


def test_0016_moves_the_review_audit_into_the_verified_chain(engine: Engine) -> None:
    """The review links' own audit rows join the hash chain after the rows already there,
    with their case's entity; ``hub audit verify``'s walk holds over them, and a moved row
    edited afterwards is named."""
    from alembic import command
    from sqlmodel import Session

    from hub.migrations import _config
    from pipelines.audit import AuditRecord, record, verify

    config = _config(engine)
    before = ScriptDirectory.from_config(config).get_revision(
        "0016_review_audit_trail").down_revision
    assert isinstance(before, str)
    command.downgrade(config, before)
    at = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    with Session(engine) as tx, tx.begin():  # a staff row already in the trail
        record(tx, actor="kansa@city.example.jp", actor_kind="person", action="audit.list",
               target="hub_audit", at=at, role="auditor", entity="kawagoe-city")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO con_case (case_id, procuring_entity, route, status, subject, "
            "amount_yen, contractor_user_id, contractor_name, city_name, agreed, parties, "
            "opened_at, updated_at, state) VALUES ('R8-0016', 'kawagoe-city', 'card', "
            "'review', 's', 1, 'U1', 'c', 'city', 0, 2, :now, :now, '{}')"), {"now": at})
        conn.execute(sa.text(
            "INSERT INTO con_review_audit (at, action, status, client, case_id, link_id, "
            "actor, detail) VALUES (:at, 'view', 200, '192.0.2.1', 'R8-0016', 'L-1', NULL, "
            "NULL), (:at, 'agree', 403, '192.0.2.1', 'R8-0016', 'L-1', 'boss@hokuto.jp', "
            "'CON-3 wrong code'), (:at, 'view', 404, '192.0.2.9', NULL, NULL, NULL, NULL)"),
            {"at": at})
    upgrade(engine)
    assert "con_review_audit" not in sa.inspect(engine).get_table_names()
    with Session(engine) as session:
        rows = list(session.exec(sa.select(AuditRecord).order_by(  # type: ignore[call-overload]
            AuditRecord.id)).scalars())  # type: ignore[arg-type]
        report = verify(session)
    assert report.ok, report.reason
    assert report.checked == len(rows) == 4
    assert [(r.action, r.actor, r.entity, r.target, r.outcome, r.client) for r in rows[1:]] == [
        ("review.view", "anonymous", "kawagoe-city", "R8-0016", "ok", "192.0.2.1"),
        ("review.agree", "boss@hokuto.jp", "kawagoe-city", "R8-0016", "denied", "192.0.2.1"),
        ("review.view", "anonymous", "", "-", "refused", "192.0.2.9")]
    assert json.loads(rows[2].detail) == {"status": 403, "link_id": "L-1",
                                          "detail": "CON-3 wrong code"}
    assert all(r.at.replace(tzinfo=UTC) == at for r in rows)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hub_audit SET actor = 'someone' WHERE id = :id"),
                     {"id": rows[2].id})
    with Session(engine) as session:
        edited = verify(session)
    assert (edited.ok, edited.broken_id) == (False, rows[2].id)
    command.downgrade(config, before)  # the table comes back, empty; the trail keeps its rows
    assert "con_review_audit" in sa.inspect(engine).get_table_names()
    upgrade(engine)
    assert differences(engine) == []
