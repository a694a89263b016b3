"""Invoices end to end: real Kafka, the hub, PostgreSQL and the reference ERP (spyne).

The hub runs in this process with the invoice consumer and the ERP connector's consumer;
invoices go in on the real ``proc.invoice.commands`` as OpenPeppol's JP PINT 1.1.3
examples, issued under the contractor's registered number. What the test reads back is
what the ERP holds:

- an invoice (Example1, numbered 123) passes the official rules and the hub's, and its
  payment request reaches the ERP;
- its correction (6-CorrInv: invoice 156 referring to 123) replaces that payment request
  in the ERP, with the due date; once 156 is recorded paid, a correction of 156 is
  refused (INV-6), and nothing more reaches the ERP;
- a return (7-Return, −¥110,000) becomes a staff task, not a payment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.erp import ErpConnector, ErpSettings
from connectors.erp.effects import effects
from connectors.erp.peer import ErpPeer
from hub.bootstrap import invoice_consumer
from hub.consumers import ConsumerSpec
from hub.runtime import Hub
from pipelines.invoices.rules import business_key
from schemas.envelope import Envelope, new_envelope
from schemas.erp import ErpRegistered, ErpRegistrationKind, ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceNeedsStaffReview,
    InvoicePaymentRecorded,
    InvoiceRejected,
    InvoiceSubmitted,
)
from schemas.registry import Payload
from schemas.topics import Topics
from tests.integration.test_invoice_pipeline import registered_contractor
from tests.support.hubproc import settings_for
from tests.support.kafka import create_topics, publish
from tests.support.registration import EventTap, skip_history
from tests.unit.invoice_docs import VALID_T, Doc, example, with_valid_number

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.soap, pytest.mark.e2e]

TOPICS = (Topics.INVOICE_COMMANDS, Topics.INVOICE_EVENTS, Topics.ERP_COMMANDS,
          Topics.ERP_EVENTS)
ENTITY = "ashikaga-city"


@dataclass
class Running:
    hub: Hub
    tap: EventTap
    erp: ErpPeer
    bootstrap: str
    case_id: str
    contract: str
    company_id: str

    def envelope(self, payload: Payload) -> Envelope[Any]:
        return new_envelope(payload, correlation_id=self.case_id, procuring_entity=ENTITY,
                            producer="test")

    async def submit(self, xml: str) -> Envelope[Any]:
        env = self.envelope(InvoiceSubmitted(case_id=self.case_id,
                                             contract_number=self.contract,
                                             contractor_id=self.company_id, ubl_xml=xml))
        await publish(self.bootstrap, Topics.INVOICE_COMMANDS.name, [env])
        return env

    async def answer(self, cause: Envelope[Any]) -> Payload:
        """The invoice pipeline's event for ``cause``, made by this test's hub."""
        (found,) = await self.tap.wait(
            lambda e: e.causation_id == cause.message_id and e.type.startswith("invoice.")
            and e.producer == self.hub.settings.producer_name, what=f"the answer to {cause.type}")
        return found.payload

    async def registered(self, key: str) -> ErpRegistered:
        (found,) = await self.tap.wait(
            lambda e: isinstance(e.payload, ErpRegistered) and e.payload.business_key == key
            and e.producer == self.hub.settings.producer_name, what=f"ERP registration {key}")
        assert isinstance(found.payload, ErpRegistered)
        return found.payload


@pytest.fixture
async def running(kafka_bootstrap: str, db_url: str, engine: Engine,
                  unique: str) -> AsyncIterator[Running]:
    await create_topics(kafka_bootstrap, TOPICS)
    company_id = await registered_contractor(engine, VALID_T)
    contract = f"R5-{unique[:8]}"
    with ErpPeer() as erp:
        connector = ErpConnector(ErpSettings(url=erp.url, timeout_s=5.0))
        await connector.register(ErpRegistrationRequested(
            kind=ErpRegistrationKind.CONTRACT, business_key=f"{ENTITY}:{contract}:contract",
            contract_number=contract, contractor_id=company_id, contractor_name="北東組株式会社",
            amount_jpy=5_000_000, subject="庁舎備品購入", contract_date=date(2023, 9, 1),
            period_start=date(2023, 9, 1), period_end=date(2024, 3, 31)))
        consumers = [invoice_consumer(),
                     ConsumerSpec("connector.erp", (Topics.ERP_COMMANDS,),
                                  handlers=effects(connector))]
        settings = settings_for(kafka_bootstrap, db_url, unique, producer_name=f"hub-{unique}")
        await skip_history(kafka_bootstrap,
                           [f"{settings.kafka.group_prefix}.{c.name}" for c in consumers],
                           [t.name for t in TOPICS])
        tap = EventTap(kafka_bootstrap, [Topics.INVOICE_EVENTS.name, Topics.ERP_EVENTS.name])
        await tap.start()
        hub = Hub(settings, consumers, engine=engine, serve_http=False)
        await hub.start()
        try:
            yield Running(hub, tap, erp, kafka_bootstrap, f"case-{unique}", contract,
                          company_id)
        finally:
            await hub.stop()
            await tap.stop()
            await connector.aclose()


async def test_invoice_correction_and_return_through_kafka_to_the_erp(running: Running) -> None:
    run = running
    original = Doc(with_valid_number(example("Example1-minimum"))).set("cbc:ID", "123").xml()
    accepted = await run.answer(await run.submit(original))
    assert isinstance(accepted, InvoiceAccepted)
    key_123 = business_key(ENTITY, run.contract, run.company_id, "123")
    await run.registered(key_123)

    correction = await run.answer(await run.submit(
        with_valid_number(example("Example6-CorrInv"))))
    assert isinstance(correction, InvoiceAccepted)
    assert correction.replaces_invoice_id == "123"
    key_156 = business_key(ENTITY, run.contract, run.company_id, "156")
    await run.registered(key_156)
    held_123, held_156 = run.erp.ledger.payment(key_123), run.erp.ledger.payment(key_156)
    assert held_123 is not None
    assert held_156 is not None
    assert held_123["replaced_by"] == key_156
    assert (held_156["amount"], held_156["due_date"]) == (289_490, date(2023, 11, 20))

    await publish(run.bootstrap, Topics.INVOICE_COMMANDS.name, [run.envelope(
        InvoicePaymentRecorded(case_id=run.case_id, contractor_id=run.company_id,
                               invoice_id="156", paid_on=date(2023, 11, 20)))])
    again = Doc(with_valid_number(example("Example6-CorrInv"))).set("cbc:ID", "157").set(
        "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", "156").xml()
    refused = await run.answer(await run.submit(again))  # after the payment, same partition
    assert isinstance(refused, InvoiceRejected)
    assert [v.rule_id for v in refused.violations] == ["INV-6"]

    review = await run.answer(await run.submit(
        with_valid_number(example("Example7-Return.Quan.ItPr"))))
    assert isinstance(review, InvoiceNeedsStaffReview)
    assert review.payable_amount == -110_000
    assert run.erp.ledger.count("P") == 2
