"""The agent's own wire constants agree with the hub's models (card_agent owns them so
its distribution needs neither pydantic nor the hub), and the agent takes a job's PDF only
as application/pdf with the SHA-256 the job announced (AGT-4)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import httpx
import pytest

from card_agent.client import DocumentMismatchError, GatewayClient
from card_agent.wire import CARD_PROOF_CONTEXT, RuleViolation
from hub.gateway.cardauth import CARD_PROOF_CONTEXT as HUB_CONTEXT
from schemas.rejection import RuleViolation as HubRuleViolation


def test_rule_violation_has_the_hubs_fields() -> None:
    assert [f.name for f in dataclasses.fields(RuleViolation)] == list(
        HubRuleViolation.model_fields)


def test_a_hub_violation_round_trips_through_the_agent() -> None:
    hub = HubRuleViolation(rule_id="PIN-2", message_ja="拒否", message_en="refused",
                           next_step_ja="やり直す", next_step_en="retry", field="proof")
    agent = RuleViolation.from_dict({**hub.model_dump(mode="json"), "added_later": 1})
    assert HubRuleViolation.model_validate(agent.model_dump()) == hub


def test_the_card_proof_context_is_the_hubs() -> None:
    assert CARD_PROOF_CONTEXT == HUB_CONTEXT


PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n"
JOB = {"id": "j1", "document_sha256": hashlib.sha256(PDF).hexdigest()}


def _hub(content_type: str, body: bytes = PDF, repr_digest: str | None = None) -> GatewayClient:
    """A hub that answers the job's document URL (a fake: the wire's shape is the test)."""
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/gateway/jobs/j1/document"
        assert request.headers["authorization"] == "Bearer t"
        headers = {"Content-Type": content_type}
        if repr_digest is not None:
            headers["Repr-Digest"] = repr_digest
        return httpx.Response(200, content=body, headers=headers)

    client = GatewayClient(httpx.Client(base_url="http://hub.test",
                                        transport=httpx.MockTransport(answer)))
    client.token = "t"
    return client


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_the_agent_takes_the_announced_pdf() -> None:
    good = f"sha-256=:{_b64(hashlib.sha256(PDF).digest())}:"
    assert _hub("application/pdf", repr_digest=good).document(JOB) == PDF
    assert _hub("application/pdf").document(JOB) == PDF  # without Repr-Digest: the job's


@pytest.mark.parametrize(("content_type", "body", "digest", "said"), [
    ("text/html; charset=utf-8", PDF, None, "not application/pdf but 'text/html'"),
    ("application/pdf", PDF + b" ", None, "not the job's document_sha256"),
    ("application/pdf", PDF, f"sha-256=:{_b64(bytes(32))}:", "not the response's Repr-Digest"),
    ("application/pdf", PDF, "sha-256=:###:", "not the response's Repr-Digest"),
])
def test_the_agent_refuses_what_is_not_the_announced_pdf(
        content_type: str, body: bytes, digest: str | None, said: str) -> None:
    with pytest.raises(DocumentMismatchError) as refused:
        _hub(content_type, body, digest).document(JOB)
    violation = refused.value.violation
    assert violation.rule_id == "AGT-4"
    assert said in violation.message_en
    assert violation.message_ja
    assert violation.next_step_ja
    assert violation.next_step_en
