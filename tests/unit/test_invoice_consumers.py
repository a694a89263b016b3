"""The invoice pipeline's consumer spec as hub.bootstrap wires it, and its
AsyncAPI document."""

from __future__ import annotations

from hub.bootstrap import invoice_consumer
from hub.broker import asyncapi
from pipelines.invoices import HANDLERS
from schemas.invoice import InvoicePaymentRecorded, InvoiceSubmitted
from schemas.topics import Topics


def test_invoice_consumer_reads_commands_and_documents_what_it_emits() -> None:
    spec = invoice_consumer()
    assert (spec.name, spec.topics) == ("invoices", (Topics.INVOICE_COMMANDS,))
    assert set(HANDLERS) == {InvoiceSubmitted, InvoicePaymentRecorded}
    assert [t for t, _ in spec.emits] == [Topics.INVOICE_EVENTS, Topics.ERP_COMMANDS]
    doc = asyncapi([spec], version="0.0.0").to_specification().to_json()
    for name in ("InvoiceSubmitted", "InvoicePaymentRecorded", "InvoiceAccepted",
                 "InvoiceRejected", "InvoiceNeedsStaffReview", "ErpRegistrationRequested"):
        assert name in doc, name
