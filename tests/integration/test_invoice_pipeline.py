"""The invoice pipeline through hub.processing.Processor against a real database (SQLite
file and PostgreSQL, migrated up to 0004_surety_invoices). The contractor and its
issuer number come from the registration pipeline itself: a qualification row with
``invoice_number`` and a card registration, run through the registration consumer."""

from __future__ import annotations

import random
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.bootstrap import invoice_consumer
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.processing import BatchReport, Processor
from hub.settings import RetrySettings
from pipelines.invoices.models import InvoiceRow
from pipelines.registration.handlers import RegistrationHandlers
from pipelines.registration.models import ContractorRow
from schemas.envelope import new_envelope
from schemas.erp import ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceNeedsStaffReview,
    InvoicePaymentRecorded,
    InvoiceRejected,
    InvoiceSubmitted,
)
from schemas.registry import Payload
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.unit.invoice_docs import VALID_T, Doc, example, with_valid_number
from tests.unit.test_registration_rules import NOW, command_of, qual, qualification_update, register

pytestmark = pytest.mark.postgres

NOW_DT = datetime.fromisoformat(NOW)
T_NUMBER = "T9234567890123"
SAMPLE = (Path(__file__).parent.parent / "data" / "jp_pint_invoice.xml").read_text("utf-8")
OUTBOX = OutboxRecord.__table__  # type: ignore[attr-defined]


class Run:
    def __init__(self, engine: Engine, spec: ConsumerSpec) -> None:
        self.processor = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                                   producer="test", clock=lambda: NOW_DT, rng=random.Random(3))
        self.offset = 0

    async def send(self, *payloads: Payload, key: str = "R4-KOJI-0042") -> BatchReport:
        deliveries = []
        for payload in payloads:
            env = new_envelope(payload, correlation_id=key, procuring_entity="saitama-pref",
                               producer="test", occurred_at=NOW_DT)
            k, value, headers = encode(env)
            self.offset += 1
            deliveries.append(Delivery(topic="in", partition=0, offset=self.offset, key=k,
                                       value=value, headers=headers))
        return await self.processor.process(deliveries)


async def registered_contractor(engine: Engine, invoice_number: str | None) -> str:
    """Register a contractor through the registration pipeline; its 企業ID."""
    spec = ConsumerSpec("registration", (Topics.REGISTRATION_COMMANDS,),
                        handlers=RegistrationHandlers().handlers)
    report = await Run(engine, spec).send(
        qualification_update(qual(invoice_number=invoice_number)), command_of(register()),
        key="1234567890")
    assert report.done == 2
    with Session(engine) as session:
        (row,) = session.exec(select(ContractorRow)).all()
        return row.company_id


def outbox(engine: Engine) -> list[tuple[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(OUTBOX.c.topic, OUTBOX.c.value).order_by(OUTBOX.c.id))
        return [(r.topic, decode(r.value).payload) for r in rows]


def invoice(company_id: str, **change: Any) -> InvoiceSubmitted:
    data: dict[str, Any] = {"case_id": "R4-KOJI-0042", "contract_number": "R4-0042",
                            "contractor_id": company_id, "ubl_xml": SAMPLE}
    data.update(change)
    return InvoiceSubmitted(**data)


async def test_jp_pint_invoice_to_erp_payment_once(engine: Engine) -> None:
    """INV-1 (number registered via the registration pipeline), INV-2, INV-3."""
    company_id = await registered_contractor(engine, T_NUMBER)
    run = Run(engine, invoice_consumer())
    cmd = invoice(company_id)
    first = await run.send(cmd)
    again = await run.send(cmd)  # the same invoice sent again: a new message, same number
    assert (first.done, again.done) == (1, 1)
    sent = [(t, p) for t, p in outbox(engine) if t in (Topics.INVOICE_EVENTS.name,
                                                       Topics.ERP_COMMANDS.name)]
    kinds = [(t, type(p).__name__) for t, p in sent]
    assert kinds == [(Topics.INVOICE_EVENTS.name, "InvoiceAccepted"),
                     (Topics.ERP_COMMANDS.name, "ErpRegistrationRequested"),
                     (Topics.INVOICE_EVENTS.name, "InvoiceRejected")]
    erp = sent[1][1]
    assert isinstance(erp, ErpRegistrationRequested)
    assert (erp.invoice_number, erp.amount_jpy, erp.contractor_id) == (
        T_NUMBER, 30_000_000, company_id)
    duplicate = sent[2][1]
    assert isinstance(duplicate, InvoiceRejected)
    assert [v.rule_id for v in duplicate.violations] == ["INV-3"]
    with Session(engine) as session:
        (row,) = session.exec(select(InvoiceRow)).all()
        assert (row.invoice_id, row.source_format, row.payable_amount) == (
            "INV-2023-0930-001", "jp-pint", 30_000_000)
        assert row.business_key == erp.business_key


@pytest.mark.parametrize("registered", [None, "T5835678256246"])
async def test_unregistered_issuer_number_is_rejected(engine: Engine,
                                                      registered: str | None) -> None:
    """INV-1: the invoice's T-number must be in the contractor's user data first."""
    company_id = await registered_contractor(engine, registered)
    await Run(engine, invoice_consumer()).send(invoice(company_id))
    events = [p for _, p in outbox(engine) if isinstance(p, InvoiceRejected | InvoiceAccepted)]
    assert len(events) == 1
    assert isinstance(events[0], InvoiceRejected)
    assert [v.rule_id for v in events[0].violations] == ["INV-1"]
    with Session(engine) as session:
        assert session.exec(select(InvoiceRow)).all() == []


async def test_unknown_contractor_and_hostile_xml_are_rejections(engine: Engine) -> None:
    run = Run(engine, invoice_consumer())
    hostile = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&x;'
               '</Invoice>')
    report = await run.send(invoice("9999999999999999"),
                            invoice("9999999999999999", ubl_xml=hostile))
    assert (report.done, report.dead) == (2, 0)
    rejected = [p for _, p in outbox(engine) if isinstance(p, InvoiceRejected)]
    assert [[v.rule_id for v in r.violations] for r in rejected] == [["INV-1"], ["INV-2"]]
    assert "root:" not in str(rejected[1].model_dump())


async def test_correction_replaces_the_unpaid_invoice_and_is_refused_once_paid(
        engine: Engine) -> None:
    """INV-6 through the pipeline's table: OpenPeppol's 6-CorrInv (invoice 156 correcting 123)
    replaces invoice 123's payment request while it is unpaid; once the city records 156 as
    paid, a correction of 156 is refused; a return (7-Return) becomes a staff task; a payment
    recorded for an unknown invoice is dead-lettered with its reason."""
    company_id = await registered_contractor(engine, VALID_T)
    run = Run(engine, invoice_consumer())
    original = Doc(with_valid_number(example("Example1-minimum"))).set("cbc:ID", "123").xml()
    correction = with_valid_number(example("Example6-CorrInv"))
    again = Doc(correction).set("cbc:ID", "157").set(
        "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", "156").xml()
    first = await run.send(invoice(company_id, ubl_xml=original),
                           invoice(company_id, ubl_xml=correction))
    assert first.done == 2
    with Session(engine) as session:
        rows = {r.invoice_id: r for r in session.exec(select(InvoiceRow)).all()}
    assert (rows["123"].status, rows["123"].replaced_by) == ("replaced", "156")
    assert (rows["156"].status, rows["156"].replaces_invoice_id) == ("requested", "123")
    assert (rows["156"].transaction_date, rows["156"].due_date) == (date(2023, 10, 18),
                                                                    date(2023, 11, 20))
    payments = [p for t, p in outbox(engine) if isinstance(p, ErpRegistrationRequested)]
    assert [p.amount_jpy for p in payments] == [281_240, 289_490]
    assert payments[1].replaces_business_key == rows["123"].business_key
    assert payments[1].due_date == date(2023, 11, 20)

    paid = InvoicePaymentRecorded(case_id="R4-KOJI-0042", contractor_id=company_id,
                                  invoice_id="156", paid_on=date(2023, 11, 20))
    unknown = paid.model_copy(update={"invoice_id": "999"})
    second = await run.send(paid, invoice(company_id, ubl_xml=again), unknown,
                            invoice(company_id, ubl_xml=with_valid_number(
                                example("Example7-Return.Quan.ItPr"))))
    assert (second.done, second.dead_reasons) == (3, ["permanent-failure"])
    with engine.connect() as conn:
        (dead,) = conn.execute(sa.select(OUTBOX.c.headers).where(OUTBOX.c.topic.like("%.dlq")))
    assert "invoice 999" in dead.headers
    with Session(engine) as session:
        row = session.exec(select(InvoiceRow).where(InvoiceRow.invoice_id == "156")).one()
        assert (row.status, row.paid_on) == ("paid", date(2023, 11, 20))
        assert len(session.exec(select(InvoiceRow)).all()) == 2
    events = [p for t, p in outbox(engine) if t == Topics.INVOICE_EVENTS.name]
    refused, review = events[-2], events[-1]
    assert isinstance(refused, InvoiceRejected)
    assert [v.rule_id for v in refused.violations] == ["INV-6"]
    assert "支払済み" in refused.violations[0].message_ja
    assert isinstance(review, InvoiceNeedsStaffReview)
    assert review.payable_amount == -110_000
    assert len([p for _, p in outbox(engine) if isinstance(p, ErpRegistrationRequested)]) == 2
