"""Each procuring entity's own city signer (IAM-4): the city signer's consumer signs a
case with its entity's signer only; a case of an entity with none is refused for good
(dead-lettered naming the entity, with what to do in Japanese and English), never signed
with another entity's key. The real keys in SoftHSM2 are signed with end to end in
tests/e2e/test_two_entities.py."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from connectors._shared.entities import EntityNotConfiguredError
from hub.contract import jobs
from hub.contract.jobs import city_signer_consumer
from schemas.contract import ContractStatus, ContractStepRecorded
from schemas.envelope import new_envelope

AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class Signed(Exception):
    """The signer was reached."""


class Signer:
    def __init__(self) -> None:
        self.calls = 0

    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> Any:
        self.calls += 1
        raise Signed


def handler_for(monkeypatch: pytest.MonkeyPatch, entity: str,
                signers: dict[str, Signer]) -> tuple[Any, Any]:
    found = SimpleNamespace(state=SimpleNamespace(procuring_entity=entity, case_id="R8-0001"),
                            contractor=None, pdf=b"%PDF-1.7", done=None)
    monkeypatch.setattr(jobs, "_to_sign", lambda engine, case_id: found)
    spec = city_signer_consumer(sa.create_engine("sqlite://"), signers, clock=lambda: AT)
    step = new_envelope(ContractStepRecorded(case_id="R8-0001",
                                             status=ContractStatus.CITY_AGREED,
                                             step="econtract.city-agreed", agreed=2, parties=2,
                                             at=AT), correlation_id="R8-0001",
                        procuring_entity=entity, producer="test")
    return spec.handlers[ContractStepRecorded], step


@pytest.mark.parametrize("entity", ["kawagoe-city", "saitama-pref"])
async def test_a_case_is_signed_by_its_own_entity_only(monkeypatch: pytest.MonkeyPatch,
                                                       entity: str) -> None:
    signers = {"kawagoe-city": Signer(), "saitama-pref": Signer()}
    handler, step = handler_for(monkeypatch, entity, signers)
    with pytest.raises(Signed):
        await handler(SimpleNamespace(), step)
    assert {code: s.calls for code, s in signers.items()} == {
        code: int(code == entity) for code in signers}


async def test_an_entity_without_a_signer_is_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    signers = {"kawagoe-city": Signer(), "saitama-pref": Signer()}
    handler, step = handler_for(monkeypatch, "tokorozawa-city", signers)
    with pytest.raises(EntityNotConfiguredError) as refused:
        await handler(SimpleNamespace(), step)
    assert all(s.calls == 0 for s in signers.values())
    error = refused.value
    assert error.permanent
    assert error.rule_ids == ("IAM-4",)
    assert "tokorozawa-city" in error.detail
    assert "signer" in error.detail
    assert "tokorozawa-city" in error.text_ja
    assert "hub dlq replay" in error.text_ja
    assert "entities.tokorozawa-city.signer" in error.text_en
