"""Each procuring entity's own ERP and mail sender (connectors/_shared/entities.py,
hub/bootstrap.py): two reference ERPs (spyne over HTTP) and two SMTP relays (aiosmtpd) on
loopback behind the hub's real processor and database. A command of kawagoe-city lands
only in kawagoe-city's ERP, saitama-pref's only in saitama-pref's; each entity's mail
leaves through its own relay with its own From; a message of an entity with nothing
configured is dead-lettered at once naming the entity, never sent to another's; an
entity listed without a connector the others have stops the start, naming it."""

from __future__ import annotations

import inspect
import random
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.erp.peer import ErpPeer
from connectors.mail.peer import SmtpPeer
from hub.bootstrap import EntityConfigError, Wiring, entity_consumers
from hub.consumers import ConsumerSpec
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import EntityErpSettings as Erp
from hub.settings import EntityMailSettings as Mail
from hub.settings import EntitySettings, RetrySettings, Settings
from schemas.envelope import new_envelope
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.mail import MailKind, MailRequested
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
    entity_consumers(wiring, Settings(entities={
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
    with pytest.raises(EntityConfigError, match="erp missing for kawagoe-city"):
        entity_consumers(wiring, Settings(entities={
            "kawagoe-city": EntitySettings(),
            "saitama-pref": EntitySettings(erp=Erp(url="http://127.0.0.1:1/"))}))


def mail(entity: str) -> Any:
    request = MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION,
                            to=("taro@kensetsu.example",), values={
                                "procuring_entity_name": entity, "company_name": "○○建設株式会社",
                                "company_id": "1234567890123456", "contact_name": "埼玉 太郎",
                                "contact_address": "埼玉県さいたま市○○1丁目23番地"})
    return new_envelope(request, correlation_id=str(request.mail_id), procuring_entity=entity,
                        producer="test")


async def test_each_entity_mails_from_its_own_sender(engine: Engine) -> None:
    with SmtpPeer() as kawagoe, SmtpPeer() as saitama:
        wiring = Wiring(engine=engine, consumers=[ConsumerSpec(
            "connector.mail", (Topics.MAIL_REQUESTS,), handlers={}, description="SMTP")])
        entity_consumers(wiring, Settings(entities={
            "kawagoe-city": EntitySettings(mail=Mail(
                port=kawagoe.port, from_address="keiyaku@city.kawagoe.example.jp",
                from_name="川越市 契約課")),
            "saitama-pref": EntitySettings(mail=Mail(
                port=saitama.port, from_address="nyusatsu@pref.saitama.example.jp",
                from_name="埼玉県 入札課"))}))
        (spec,) = wiring.consumers
        proc = Processor(spec, engine, RetrySettings(max_attempts=3), producer="test",
                         clock=Clock(), rng=random.Random(2))
        try:
            await proc.process([
                Delivery(topic=Topics.MAIL_REQUESTS.name, partition=0, offset=n, key=key,
                         value=value, headers=headers)
                for n, (key, value, headers) in enumerate(encode(env) for env in (
                    mail("kawagoe-city"), mail("saitama-pref"), mail("kawagoe-city"),
                    mail("tokorozawa-city")))])
        finally:
            for close in wiring.closers:
                if inspect.isawaitable(result := close()):
                    await result
        from_kawagoe = [m.message["From"] for m in kawagoe.wait_for(2)]
        from_saitama = [m.message["From"] for m in saitama.wait_for(1)]
    assert all("keiyaku@city.kawagoe.example.jp" in f for f in from_kawagoe)
    assert len(from_kawagoe) == 2
    assert ["nyusatsu@pref.saitama.example.jp" in f for f in from_saitama] == [True]
    (dead,) = outbox(engine, Topics.MAIL_REQUESTS.dlq)
    assert "tokorozawa-city" in (header(load_headers(dead.headers),
                                        "x-dlq-error-message") or "")


def test_a_connector_some_entities_have_is_required_of_all(engine: Engine) -> None:
    with pytest.raises(EntityConfigError, match="mail missing for saitama-pref"):
        entity_consumers(Wiring(engine=engine), Settings(entities={
            "kawagoe-city": EntitySettings(erp=Erp(url="http://127.0.0.1:1/"), mail=Mail(
                from_address="a@city.kawagoe.example.jp", from_name="川越市")),
            "saitama-pref": EntitySettings(erp=Erp(url="http://127.0.0.1:2/"))}))
