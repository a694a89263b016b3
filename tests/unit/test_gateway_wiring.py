"""The gateway's wiring: settings from HUB_GATEWAY_*, the OpenAPI document, the consumer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from hub.gateway import OUTCOME_CONSUMER, GatewaySettings, build_router, gateway_config
from schemas.registration import CardRegistered, RegistrationRejected
from schemas.topics import Topics
from tests.card.pki import shared_pki


def test_config_from_settings_and_openapi() -> None:
    pki = shared_pki()
    cfg = gateway_config(sa.create_engine("sqlite://"),
                         GatewaySettings(card_roots=(pki.root.cert_path,), session_minutes=5))
    assert cfg.card_roots == (pki.root.certificate,)
    assert cfg.session_ttl.total_seconds() == 300
    app = FastAPI()
    app.include_router(build_router(cfg))
    paths = app.openapi()["paths"]
    for path in ("/gateway/challenges", "/gateway/sessions", "/gateway/registrations",
                 "/gateway/changes", "/gateway/renewals", "/gateway/requests/{request_id}",
                 "/gateway/jobs", "/gateway/jobs/{job_id}", "/gateway/jobs/{job_id}/document",
                 "/gateway/jobs/{job_id}/signed"):
        assert path in paths, path
    body = paths["/gateway/jobs/{job_id}/signed"]["put"]["requestBody"]["content"]
    assert "application/pdf" in body
    document = paths["/gateway/jobs/{job_id}/document"]["get"]["responses"]["200"]["content"]
    assert "application/pdf" in document


def test_config_needs_card_roots() -> None:
    with pytest.raises(ValueError, match="HUB_GATEWAY_CARD_ROOTS"):
        gateway_config(sa.create_engine("sqlite://"), GatewaySettings())


def test_outcome_consumer_reads_registration_events() -> None:
    assert OUTCOME_CONSUMER.topics == (Topics.REGISTRATION_EVENTS,)
    assert {CardRegistered, RegistrationRejected} <= set(OUTCOME_CONSUMER.handlers)


def test_agent_and_gateway_sign_the_same_proof_context() -> None:
    # The agent does not import hub/ (dependencies point one way): the constant is
    # repeated, and this keeps the two copies equal.
    from card_agent.client import CARD_PROOF_CONTEXT as AGENT
    from hub.gateway.cardauth import CARD_PROOF_CONTEXT as HUB

    assert AGENT == HUB
