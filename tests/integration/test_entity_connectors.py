"""Each procuring entity's own ERP and mail sender (connectors/_shared/entities.py,
hub/bootstrap.py): two reference ERPs (spyne over HTTP) and two SMTP relays (aiosmtpd) on
loopback behind the hub's real processor and database. A command of kawagoe-city lands
only in kawagoe-city's ERP, saitama-pref's only in saitama-pref's; each entity's mail
leaves through its own relay with its own From and Reply-To; a message of an entity with nothing
configured is dead-lettered at once naming the entity, never sent to another's; an
entity listed without a connector the others have stops the start, naming it."""

from __future__ import annotations

import inspect
import random
import uuid
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path
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
    assert_iam4(headers, "tokorozawa-city", "erp")


def assert_iam4(headers: Any, entity: str, connector: str) -> None:
    """The dead letter names IAM-4 and says in both languages what to do."""
    assert header(headers, "x-dlq-rule-ids") == "IAM-4"
    text_ja = header(headers, "x-dlq-text-ja") or ""
    text_en = header(headers, "x-dlq-text-en") or ""
    assert entity in text_ja
    assert "hub dlq replay" in text_ja
    assert f"entities.{entity}.{connector}" in text_en
    assert "replay" in text_en


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


def spooled_reply_to(spool: Path) -> list[str]:
    return [str(message_from_bytes(eml.read_bytes(), policy=policy.default)["Reply-To"])
            for eml in sorted(spool.glob("*.eml"))]


async def test_each_entity_mails_from_its_own_sender(engine: Engine, tmp_path: Path) -> None:
    with (SmtpPeer(spool=tmp_path / "kawagoe") as kawagoe,
          SmtpPeer(spool=tmp_path / "saitama") as saitama):
        wiring = Wiring(engine=engine, consumers=[ConsumerSpec(
            "connector.mail", (Topics.MAIL_REQUESTS,), handlers={}, description="SMTP")])
        entity_consumers(wiring, Settings(entities={
            "kawagoe-city": EntitySettings(mail=Mail(
                port=kawagoe.port, from_address="keiyaku@city.kawagoe.example.jp",
                from_name="川越市 契約課", reply_to="keiyaku-toiawase@city.kawagoe.example.jp")),
            "saitama-pref": EntitySettings(mail=Mail(
                port=saitama.port, from_address="nyusatsu@pref.saitama.example.jp",
                from_name="埼玉県 入札課",
                reply_to="nyusatsu-madoguchi@pref.saitama.example.jp"))}))
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
    # Each relay's spool holds the mails as stored, each with its entity's Reply-To.
    assert spooled_reply_to(tmp_path / "kawagoe") == [
        "keiyaku-toiawase@city.kawagoe.example.jp"] * 2
    assert spooled_reply_to(tmp_path / "saitama") == [
        "nyusatsu-madoguchi@pref.saitama.example.jp"]
    (dead,) = outbox(engine, Topics.MAIL_REQUESTS.dlq)
    assert "tokorozawa-city" in (header(load_headers(dead.headers),
                                        "x-dlq-error-message") or "")


def test_a_connector_some_entities_have_is_required_of_all(engine: Engine) -> None:
    with pytest.raises(EntityConfigError, match="mail missing for saitama-pref"):
        entity_consumers(Wiring(engine=engine), Settings(entities={
            "kawagoe-city": EntitySettings(erp=Erp(url="http://127.0.0.1:1/"), mail=Mail(
                from_address="a@city.kawagoe.example.jp", from_name="川越市")),
            "saitama-pref": EntitySettings(erp=Erp(url="http://127.0.0.1:2/"))}))


async def run_entity_consumer(engine: Engine, wiring: Wiring, settings: Settings,
                              topic: Any, envelopes: list[Any], seed: int) -> None:
    """The wiring's one consumer, made per entity, through the real processor."""
    entity_consumers(wiring, settings)
    (spec,) = wiring.consumers
    proc = Processor(spec, engine, RetrySettings(max_attempts=3), producer="test",
                     clock=Clock(), rng=random.Random(seed))
    try:
        await proc.process([Delivery(topic=topic.name, partition=0, offset=n, key=key,
                                     value=value, headers=headers)
                            for n, (key, value, headers) in enumerate(map(encode, envelopes))])
    finally:
        for close in wiring.closers:
            if inspect.isawaitable(result := close()):
                await result


async def test_each_entity_asks_its_own_dsure_with_its_own_token(engine: Engine) -> None:
    from connectors.dsure.peer import DSurePeer, seed_certificate
    from hub.settings import EntityDSureSettings as DSure
    from schemas.surety import SuretyCheckRequested, SuretyKeySource

    kawagoe, saitama = DSurePeer(token="kawagoe-dsure-token"), DSurePeer(token="saitama-token")
    kawagoe.start()
    saitama.start()
    try:
        # each certificate is published on one service only: where it is found tells
        # which service was asked, and each service takes only its own entity's token
        k = kawagoe.issue(seed_certificate("31072-0011K"))
        s = saitama.issue(seed_certificate("31072-0022S"))

        def check(entity: str, number: str, key: str) -> Any:
            return new_envelope(SuretyCheckRequested(
                contract_number=number, auth_key=key, source=SuretyKeySource.APPLICATION),
                correlation_id=number, procuring_entity=entity, producer="test")

        wiring = Wiring(engine=engine, consumers=[ConsumerSpec(
            "connector.dsure", (Topics.SURETY_COMMANDS,), handlers={}, description="D・Sure")])
        await run_entity_consumer(engine, wiring, Settings(entities={
            "kawagoe-city": EntitySettings(dsure=DSure(base_url=kawagoe.url,
                                                       api_token="kawagoe-dsure-token")),
            "saitama-pref": EntitySettings(dsure=DSure(base_url=saitama.url,
                                                       api_token="saitama-token"))}),
            Topics.SURETY_COMMANDS, [
                check("kawagoe-city", "31072-0011K", k.auth_key),
                check("saitama-pref", "31072-0022S", s.auth_key),
                check("saitama-pref", "31072-0011K", k.auth_key),  # kawagoe's: not on saitama's
                check("tokorozawa-city", "31072-0011K", k.auth_key)], seed=3)
    finally:
        kawagoe.stop()
        saitama.stop()
    from schemas.wire import decode

    answers = [decode(r.value, load_headers(r.headers))
               for r in outbox(engine, Topics.SURETY_EVENTS.name)]
    found = [(a.procuring_entity, a.type, getattr(a.payload, "certificate", None))
             for a in answers]
    assert [(e, t) for e, t, _ in found] == [
        ("kawagoe-city", "surety.certificate-fetched"),
        ("saitama-pref", "surety.certificate-fetched"),
        ("saitama-pref", "surety.lookup-refused")], found
    assert [c.contract_number for _, _, c in found[:2]] == ["31072-0011K", "31072-0022S"]
    (dead,) = outbox(engine, Topics.SURETY_COMMANDS.dlq)
    assert_iam4(load_headers(dead.headers), "tokorozawa-city", "dsure")
    # /readyz and the metrics watch each entity's own connector
    assert sorted(wiring.connectors) == ["connector.dsure@kawagoe-city",
                                         "connector.dsure@saitama-pref"]


async def test_each_entity_sends_to_its_own_cloudsign_team(engine: Engine,
                                                           tmp_path: Any) -> None:
    import io

    from reportlab.pdfgen import canvas

    from connectors.cloudsign import CloudSignConnector, CloudSignSettings
    from connectors.cloudsign.peer import CloudSignPeer
    from hub.settings import EntityCloudSignSettings as CloudSign
    from schemas.cloudsign import ContractParticipant, ContractSendRequested

    kawagoe, saitama = CloudSignPeer(client_id="kawagoe-team"), CloudSignPeer(
        client_id="saitama-team")
    kawagoe.start()
    saitama.start()
    shared = CloudSignConnector(CloudSignSettings(document_dir=tmp_path))  # type: ignore[call-arg]
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(60, 780, "contract")
    pdf.save()
    ref = shared.store.put("請負契約書.pdf", buffer.getvalue())

    def send(entity: str, case_id: str) -> Any:
        return new_envelope(ContractSendRequested(
            request_id=uuid.uuid4(), case_id=case_id, title=f"請負契約書 {case_id}",
            files=(ref,), participants=(ContractParticipant(
                name="足利 一郎", email="ichiro@example.co.jp"),)),
            correlation_id=case_id, procuring_entity=entity, producer="test")

    try:
        wiring = Wiring(engine=engine, consumers=[ConsumerSpec(
            "connector.cloudsign", (Topics.CONTRACT_COMMANDS,), handlers={},
            description="CloudSign")], connectors={"connector.cloudsign": shared})
        await run_entity_consumer(engine, wiring, Settings(entities={
            "kawagoe-city": EntitySettings(cloudsign=CloudSign(base_url=kawagoe.url,
                                                               client_id="kawagoe-team")),
            "saitama-pref": EntitySettings(cloudsign=CloudSign(base_url=saitama.url,
                                                               client_id="saitama-team"))}),
            Topics.CONTRACT_COMMANDS, [send("kawagoe-city", "K-1"), send("saitama-pref", "S-1"),
                                       send("kawagoe-city", "K-2"),
                                       send("tokorozawa-city", "T-1")], seed=4)
        titles = {name: sorted(peer.document(d)["title"] for d in peer.document_ids())
                  for name, peer in (("kawagoe", kawagoe), ("saitama", saitama))}
    finally:
        kawagoe.stop()
        saitama.stop()
        await shared.aclose()
    assert titles == {"kawagoe": ["請負契約書 K-1", "請負契約書 K-2"],
                      "saitama": ["請負契約書 S-1"]}
    (dead,) = outbox(engine, Topics.CONTRACT_COMMANDS.dlq)
    assert_iam4(load_headers(dead.headers), "tokorozawa-city", "cloudsign")


def test_entity_signers_are_each_entitys_own_token_and_all_or_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from hub.bootstrap import entity_signers
    from hub.settings import EntitySignerSettings as Signer
    from tests.card.pki import shared_pki

    monkeypatch.setenv("HUB_TSA_TRUST_ROOTS", json.dumps([str(shared_pki().root.cert_path)]))

    def signer(label: str) -> Signer:
        return Signer(token_label=label, key_label="city", pin=f"pin-{label}")  # type: ignore[arg-type]

    signers = entity_signers(Settings(entities={
        "kawagoe-city": EntitySettings(signer=signer("kawagoe")),
        "saitama-pref": EntitySettings(signer=signer("saitama"))}))
    assert {code: s.settings.token_label for code, s in signers.items()} == {
        "kawagoe-city": "kawagoe", "saitama-pref": "saitama"}
    assert signers["saitama-pref"].settings.pin.get_secret_value() == "pin-saitama"
    assert "pin-" not in repr(signers)
    assert entity_signers(Settings(entities={"kawagoe-city": EntitySettings()})) == {}
    with pytest.raises(EntityConfigError, match="signer missing for saitama-pref"):
        entity_signers(Settings(entities={"kawagoe-city": EntitySettings(signer=signer("k")),
                                          "saitama-pref": EntitySettings()}))
