"""Each procuring entity's own ERP (connectors/_shared/entities.py, hub/bootstrap.py): two
reference ERPs (spyne over HTTP on loopback) behind the hub's real processor and database.
A command of kawagoe-city lands only in kawagoe-city's ERP, saitama-pref's only in
saitama-pref's; a command of an entity with no ERP configured is dead-lettered at once
naming the entity, never sent to another's; an entity listed without an ERP stops the
start, naming it."""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.erp.peer import ErpPeer
from hub.bootstrap import EntityConfigError, Wiring, entity_erp_consumer
from hub.consumers import ConsumerSpec
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import EntityErpSettings as Erp
from hub.settings import EntitySettings, RetrySettings, Settings
from schemas.envelope import new_envelope
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.topics import Topics
from schemas.wire import encode, header
from tests.support.processing import Clock
from tests.support.processing import outbox_rows as outbox

pytestmark = [pytest.mark.soap, pytest.mark.postgres]


def command(entity: str, number: str) -> Any:
    request = ErpRegistrationRequested(
        kind=ErpRegistrationKind.CONTRACT, business_key=f"{entity}:{number}:contract",
        contract_number=number, contractor_id="1234567890123456",
        contractor_name="○○建設株式会社", amount_jpy=10_000_000, subject="市道補修工事",
        contract_date=date(2026, 11, 24), period_start=date(2026, 12, 1),
        period_end=date(2027, 3, 31))
    return new_envelope(request, correlation_id=number, procuring_entity=entity,
                        producer="test")


def delivery(env: Any, offset: int) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic=Topics.ERP_COMMANDS.name, partition=0, offset=offset, key=key,
                    value=value, headers=headers)


@pytest.fixture
def erps() -> Iterator[tuple[ErpPeer, ErpPeer]]:
    with ErpPeer() as kawagoe, ErpPeer() as saitama:
        yield kawagoe, saitama


async def test_each_entity_lands_only_in_its_own_erp(erps: tuple[ErpPeer, ErpPeer],
                                                     engine: Engine) -> None:
    kawagoe, saitama = erps
    wiring = Wiring(engine=engine, consumers=[ConsumerSpec(
        "connector.erp", (Topics.ERP_COMMANDS,), handlers={}, description="ERP")])
    entity_erp_consumer(wiring, Settings(entities={
        "kawagoe-city": EntitySettings(erp=Erp(url=kawagoe.url)),
        "saitama-pref": EntitySettings(erp=Erp(url=saitama.url))}))
    (spec,) = wiring.consumers
    proc = Processor(spec, engine, RetrySettings(max_attempts=3), producer="test",
                     clock=Clock(), rng=random.Random(1))
    try:
        await proc.process([delivery(command("kawagoe-city", "K-1"), 0),
                            delivery(command("saitama-pref", "S-1"), 1),
                            delivery(command("kawagoe-city", "K-2"), 2),
                            delivery(command("tokorozawa-city", "T-1"), 3)])
    finally:
        for close in wiring.closers:
            if inspect.isawaitable(result := close()):
                await result
    # two of kawagoe-city's, one of saitama-pref's: the counts tell where each went
    assert (kawagoe.ledger.count("C"), saitama.ledger.count("C")) == (2, 1)
    assert len(outbox(engine, Topics.ERP_EVENTS.name)) == 3
    (dead,) = outbox(engine, Topics.ERP_COMMANDS.dlq)
    headers = load_headers(dead.headers)
    assert header(headers, "x-dlq-reason") == "permanent-failure"
    assert header(headers, "x-dlq-error-class") == "EntityNotConfiguredError"
    assert "tokorozawa-city" in (header(headers, "x-dlq-error-message") or "")


def test_an_entity_without_an_erp_stops_the_start(engine: Engine) -> None:
    wiring = Wiring(engine=engine)
    with pytest.raises(EntityConfigError, match="kawagoe-city"):
        entity_erp_consumer(wiring, Settings(entities={
            "kawagoe-city": EntitySettings(),
            "saitama-pref": EntitySettings(erp=Erp(url="http://127.0.0.1:1/"))}))
