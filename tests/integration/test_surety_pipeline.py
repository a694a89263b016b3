"""The surety pipeline's handlers through hub.processing.Processor against a real
database (SQLite file and PostgreSQL, migrated by Alembic up to 0004_surety_invoices):
what reaches the outbox, the state it keeps, and no second effect on redelivery."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.bootstrap import surety_consumer
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.processing import BatchReport, Processor
from hub.settings import RetrySettings
from pipelines.surety.models import (
    GuaranteeRow,
    PaperTaskRow,
    SuretyCaseRow,
    WaitingCertificateRow,
)
from pipelines.surety.queries import open_paper_tasks
from schemas.case import CaseUpdated
from schemas.envelope import Envelope, new_envelope
from schemas.erp import ErpRegistrationRequested
from schemas.registry import Payload
from schemas.surety import (
    ContractSuretyCompleted,
    PaperGuaranteeRecorded,
    SuretyAccepted,
    SuretyCertificateFetched,
    SuretyIssueKind,
    SuretyRejected,
)
from schemas.wire import decode, encode
from tests.unit.test_surety_rules import CASE_ID, PERF, P, case, cert, perf_cert, received

pytestmark = pytest.mark.postgres

NOW = datetime(2022, 9, 28, 1, 0, tzinfo=UTC)
OUTBOX = OutboxRecord.__table__  # type: ignore[attr-defined]


class Feed:
    """Turns payloads into Kafka deliveries of the case and runs them through the Processor."""

    def __init__(self, engine: Engine) -> None:
        spec = surety_consumer()
        self.processor = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                                   producer="test", clock=lambda: NOW, rng=random.Random(1))
        self.engine = engine
        self.offset = 0

    def envelope(self, payload: Payload) -> Envelope[Any]:
        return new_envelope(payload, correlation_id=CASE_ID, procuring_entity="ashikaga-city",
                            producer="test", occurred_at=NOW)

    def delivery(self, env: Envelope[Any]) -> Delivery:
        key, value, headers = encode(env)
        self.offset += 1
        return Delivery(topic="proc.surety.events", partition=0, offset=self.offset, key=key,
                        value=value, headers=headers)

    async def send(self, *payloads: Payload) -> BatchReport:
        return await self.processor.process([self.delivery(self.envelope(p)) for p in payloads])

    def outbox(self) -> list[tuple[str, Payload]]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OUTBOX.c.topic, OUTBOX.c.value)
                                     .order_by(OUTBOX.c.id)))
        return [(r.topic, decode(r.value).payload) for r in rows]

    def of(self, kind: type[Payload]) -> list[Any]:
        return [p for _, p in self.outbox() if isinstance(p, kind)]


def fetched(certificate: Any) -> SuretyCertificateFetched:
    return SuretyCertificateFetched(certificate=certificate, fetched_at=NOW)


async def test_key_notice_to_erp_registration_and_paper_task(engine: Engine) -> None:
    """SUR-1 → SUR-2 → SUR-6 (前払金保証 to the ERP), SUR-4/SUR-5 (契約保証 on paper)."""
    feed = Feed(engine)
    report = await feed.send(case(perf_form=P).facts, received())
    assert (report.done, report.dead) == (2, 0)
    topics = [t for t, _ in feed.outbox()]
    assert topics == ["proc.surety.events", "proc.surety.commands"]  # task opened, check asked
    env = feed.envelope(fetched(cert()))
    first = await feed.processor.process([feed.delivery(env)])
    again = await feed.processor.process([feed.delivery(env)])
    assert (first.done, again.duplicate) == (1, 1)
    (erp,) = feed.of(ErpRegistrationRequested)
    assert (erp.surety_number, erp.amount_jpy, erp.contractor_id) == (
        "31072-0001M", 20_000_000, "1234567890123456")
    assert [t for t, p in feed.outbox() if isinstance(p, ErpRegistrationRequested)] == [
        "proc.erp.commands"]
    assert len(feed.of(SuretyAccepted)) == 1
    with Session(engine) as session:
        guarantee = session.get(GuaranteeRow, "31072-0001M")
        assert guarantee is not None
        assert (guarantee.form, guarantee.completed) == ("electronic", True)
        (task,) = session.exec(select(PaperTaskRow)).all()
        assert (task.product, task.status, task.due_date) == ("performance", "open",
                                                               date(2022, 9, 30))
    await feed.send(PaperGuaranteeRecorded(case_id=CASE_ID, product=PERF,
                                           guarantee_number="BG-2022-0042", issuer="〇〇銀行",
                                           received_on=date(2022, 9, 29)))
    (done,) = feed.of(ContractSuretyCompleted)
    assert done.guarantee_number == "BG-2022-0042"
    with Session(engine) as session:
        (task,) = session.exec(select(PaperTaskRow)).all()
        assert task.status == "received"


async def test_certificate_before_the_case_waits_for_it(engine: Engine) -> None:
    feed = Feed(engine)
    await feed.send(fetched(perf_cert()))
    assert feed.outbox() == []
    with Session(engine) as session:
        assert len(session.exec(select(WaitingCertificateRow)).all()) == 1
    await feed.send(case().facts)
    (done,) = feed.of(ContractSuretyCompleted)
    assert done.guarantee_number == "31072-0002P"
    with Session(engine) as session:
        assert session.exec(select(WaitingCertificateRow)).all() == []


async def test_rejections_name_the_rule_and_complete_no_guarantee(engine: Engine) -> None:
    """SUR-2 field mismatch; SUR-3 an electronic change onto a paper guarantee. A refused
    first certificate completes nothing but fixes the guarantee's form (SUR-3)."""
    feed = Feed(engine)
    await feed.send(case().facts, fetched(cert(guarantee_amount=1)))
    (rejected,) = feed.of(SuretyRejected)
    assert [(v.rule_id, v.field) for v in rejected.violations] == [("SUR-2", "guarantee_amount")]
    await feed.send(PaperGuaranteeRecorded(case_id=CASE_ID, product=PERF,
                                           guarantee_number="31072-0002P",
                                           issuer="東日本建設業保証",
                                           received_on=date(2022, 9, 29)))
    await feed.send(fetched(perf_cert(issue_kind=SuretyIssueKind.CHANGE)))
    sur3 = feed.of(SuretyRejected)[1]
    assert [v.rule_id for v in sur3.violations] == ["SUR-3"]
    with Session(engine) as session:
        refused = session.get(GuaranteeRow, "31072-0001M")
        assert refused is not None
        assert (refused.form, refused.completed) == ("electronic", False)
        paper = session.get(GuaranteeRow, "31072-0002P")
        assert paper is not None
        assert paper.form == "paper"


async def test_amount_only_change_keeps_the_certificate_good(engine: Engine) -> None:
    """CaseUpdated with a new 請負金額 only: the earlier amount stays acceptable (seed 002 注2)."""
    feed = Feed(engine)
    facts = case().facts.model_dump()
    await feed.send(case().facts, CaseUpdated(**{**facts, "contract_amount": 60_000_000}))
    with Session(engine) as session:
        row = session.get(SuretyCaseRow, CASE_ID)
        assert row is not None
        assert row.earlier_amounts == [50_000_000]
    await feed.send(fetched(cert()))
    assert len(feed.of(SuretyAccepted)) == 1


async def test_paper_record_without_a_case_is_dead_lettered(engine: Engine) -> None:
    feed = Feed(engine)
    report = await feed.send(PaperGuaranteeRecorded(
        case_id=CASE_ID, product=PERF, guarantee_number="BG-1", issuer="〇〇銀行",
        received_on=date(2022, 9, 29)))
    assert report.dead == 1


async def test_paper_tasks_are_tracked_until_the_original_arrives(engine: Engine) -> None:
    """SUR-5: the open task is listed, overdue after the contract date, gone once received."""
    feed = Feed(engine)
    await feed.send(case(perf_form=P).facts)
    with Session(engine) as session:
        (task,) = open_paper_tasks(session, date(2022, 9, 30))
        assert (task.product, task.due_date, task.overdue) == (PERF, date(2022, 9, 30), False)
        assert open_paper_tasks(session, date(2022, 9, 30), overdue_only=True) == []
        (late,) = open_paper_tasks(session, date(2022, 10, 1), overdue_only=True)
        assert late.overdue
    await feed.send(PaperGuaranteeRecorded(case_id=CASE_ID, product=PERF,
                                           guarantee_number="BG-7", issuer="〇〇銀行",
                                           received_on=date(2022, 10, 3)))
    with Session(engine) as session:
        assert open_paper_tasks(session, date(2022, 10, 3)) == []
