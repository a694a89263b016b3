"""The surety pipeline's consumer spec as hub.bootstrap wires it, and its
AsyncAPI document (every message it reads and emits is documented)."""

from __future__ import annotations

from hub.bootstrap import surety_consumer
from hub.broker import asyncapi
from pipelines.surety import HANDLERS
from schemas.topics import Topics


def test_surety_consumer_reads_its_topics_and_documents_what_it_emits() -> None:
    spec = surety_consumer()
    assert spec.name == "surety"
    assert set(spec.topics) == {Topics.CASE_EVENTS, Topics.SURETY_EVENTS,
                                Topics.SURETY_COMMANDS, Topics.APPLICATION_EVENTS}
    assert spec.handlers is HANDLERS
    assert not any(spec.is_effect(h) for h in spec.handlers.values())  # all transactional
    doc = asyncapi([spec], version="0.0.0").to_specification().to_json()
    for name in ("SuretyAccepted", "SuretyRejected", "ContractSuretyCompleted",
                 "PaperGuaranteeTaskOpened", "ErpRegistrationRequested", "CaseRegistered",
                 "SuretyCertificateFetched", "MailRequested"):
        assert name in doc, name
