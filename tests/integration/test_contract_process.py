"""The contract process manager through the hub's real Processor, on SQLite and PostgreSQL.

The card route from 開札 to 締結完了 (CON-2): the 申出書 (CON-1), the review link and its
mail, agreement, the gateway signing job, the contractor's real PAdES signature accepted
by the gateway's validation (an edited one refused, CON-5) and picked up by the job,
the city's agreement and its PAdES B-LT signature with the reference TSA, and one
CONTRACT_CONCLUDED mail per party naming the signed PDF (CON-4). Also: an
expired link refused then re-sent (CON-3), the expiry timer, contractor rejection, a
rule-breaking step answered by rule ID, redelivery without a second effect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.citysigner import CitySignerError, async_validate_contract_pdf
from connectors.tsa import HubTimeStamper, TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki
from hub.contract.jobs import (
    accept_contractor_signature,
    city_signer_consumer,
    collect_contractor_signatures,
    expire_review_links,
)
from hub.contract.models import CitySignatureRow
from hub.contract.wiring import consumers, jobs
from hub.db import OutboxRecord, ProcessedMessage
from hub.delivery import Delivery
from hub.documents import LinkSigner, SqlDocumentStore
from hub.documents.mail import MailDocuments
from hub.gateway.config import GatewayConfig
from hub.gateway.errors import GatewayRefusalError
from hub.gateway.jobs import accept_signed
from hub.gateway.models import SigningJobRow
from hub.gateway.sessions import CardSession
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.contract.erp import default_period
from pipelines.contract.state import ContractPolicy
from pipelines.contract.store import load_case, put_document
from pipelines.registration.models import CardRegistrationRow, CardRow, ContractorRow
from schemas.contract import (
    CityAgreed,
    ContractCaseOpened,
    ContractorAgreed,
    ContractorRejected,
    ContractParty,
    ContractSetPrepared,
    ContractStatus,
    ElectronicContractApplication,
    ReviewLinkResendRequested,
)
from schemas.envelope import JST, Envelope, new_envelope
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.mail import MailKind
from schemas.registration import Domain, SystemKind
from schemas.registry import Payload
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.support.processing import Clock

pytestmark = [pytest.mark.postgres, pytest.mark.tsa]

OUTBOX = OutboxRecord.__table__
CASE = "R8-0042"
BOSS = ContractParty(name="足利 一郎", email="boss@demo.co.jp")
CITY = ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp")


@dataclass
class World:
    proc: Processor
    clock: Clock
    engine: Engine
    offset: int = 0
    seen_outbox: int = 0

    async def send(self, payload: Payload, *, acted_at: datetime | None = None) -> Envelope[Any]:
        env = new_envelope(payload, correlation_id=CASE, procuring_entity="ashikaga-city",
                           producer="test", occurred_at=acted_at or self.clock.now)
        await self.deliver(env)
        return env

    async def deliver(self, env: Envelope[Any]) -> None:
        key, value, headers = encode(env)
        self.offset += 1
        await self.proc.process([Delivery(topic=Topics.CONTRACT_COMMANDS.name, partition=0,
                                          offset=self.offset, key=key, value=value,
                                          headers=headers)])

    def published(self, topic: str) -> list[Envelope[Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == topic)
                                .order_by(OUTBOX.c.id))
            return [decode(r.value, load_headers(r.headers)) for r in rows]

    def types(self) -> list[str]:
        return [e.type for e in self.published(Topics.CONTRACT_EVENTS.name)]

    async def run_job_commands(self) -> int:
        """Feed what the jobs wrote to proc.contract.commands to the processor."""
        commands = [e for e in self.published(Topics.CONTRACT_COMMANDS.name)
                    if e.producer == "hub.contract.jobs"]
        fresh = commands[self.seen_outbox:]
        self.seen_outbox = len(commands)
        for env in fresh:
            await self.deliver(env)
        return len(fresh)

    def status(self) -> ContractStatus:
        with Session(self.engine) as session:
            state = load_case(session, CASE)
        assert state is not None
        return state.status


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def tsa(pki: DevPki) -> Iterator[ReferenceTsa]:
    with ReferenceTsa(pki) as server:
        yield server


@pytest.fixture
def world(engine: Engine) -> World:
    clock = Clock()
    (spec,) = consumers(policy=ContractPolicy(
        review_link_ttl=timedelta(days=7), review_base_url="https://hub.example/contract/review"))
    proc = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=clock, rng=random.Random(5))
    return World(proc, clock, engine)


class FileKeyCitySigner:
    """The city's PAdES B-LT signature with its key from a file (the PKCS#11 path of the
    same signing is tested against SoftHSM2 in test_citysigner.py)."""

    def __init__(self, pki: DevPki, tsa: ReferenceTsa) -> None:
        self.signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
            str(pki.city_signer.key_path), str(pki.city_signer.cert_path))
        self.stamper = HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots))
        self.pki = pki

    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> Any:
        from connectors.citysigner.signer import CitySignatureResult
        from connectors.tsa.verify import tsa_validation_context

        meta = signers.PdfSignatureMetadata(
            field_name=field_name, subfilter=fields.SigSeedSubFilter.PADES,
            embed_validation_info=True,
            validation_context=tsa_validation_context(self.pki.trust_roots))
        out = BytesIO()
        await signers.PdfSigner(meta, signer=self.signer, timestamper=self.stamper
                                ).async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=out)
        return CitySignatureResult(out.getvalue(), "CN=Hub Test City Signer", datetime.now(UTC))


def register_card(engine: Engine, card: CardCredentials, now: datetime) -> CardSession:
    """The contractor's registered, active card (what registration leaves behind)."""
    with Session(engine) as session, session.begin():
        session.add(ContractorRow(network="tochigi", user_id="U0042", company_id="1" * 16,
                                  company_name="デモ建設株式会社", company_key="デモ建設",
                                  created_at=now))
        row = CardRow(issuer=card.issuer_dn, serial=str(card.serial), network="tochigi",
                      user_id="U0042", holder_name="足利 一郎", holder_address="足利市",
                      not_before=card.certificate.not_valid_before_utc,
                      not_after=card.certificate.not_valid_after_utc, status="active")
        session.add(row)
        session.flush()
        assert row.id is not None
        session.add(CardRegistrationRow(card_id=row.id, entity="ashikaga-city", domain="works",
                                        status="active", department_name="工務部",
                                        contact={}, registered_at=now))
    return CardSession(network="tochigi", user_id="U0042", company_id="1" * 16,
                       issuer=card.issuer_dn, serial=str(card.serial),
                       procuring_entity="ashikaga-city", system=SystemKind.E_CONTRACT,
                       domain=Domain.WORKS)


class CountingSigner:
    def __init__(self, signer: Any) -> None:
        self.signer, self.calls = signer, 0

    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> Any:
        self.calls += 1
        return await self.signer.sign(pdf, field_name=field_name)


def signer_processor(w: World, signer: Any, name: str) -> Processor:
    spec = dataclasses.replace(city_signer_consumer(w.engine, signer), name=name)
    return Processor(spec, w.engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=w.clock, rng=random.Random(5))


def delivery_of(env: Envelope[Any], offset: int) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic=Topics.CONTRACT_EVENTS.name, partition=0, offset=offset, key=key,
                    value=value, headers=headers)


def city_signatures(engine: Engine) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(sa.select(CitySignatureRow)).all())  # type: ignore[call-overload]


class RefusingToken:
    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> Any:
        raise CitySignerError("cannot open the city's token 'city-signer': PinIncorrect")


async def contractor_sign(pdf: bytes, pki: DevPki, tsa: ReferenceTsa
                          ) -> tuple[CardCredentials, bytes]:
    card = pki.issue_card("足利 一郎", "栃木県足利市本城3-2145", 770_001)
    signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(card.key_path), str(card.cert_path), ca_chain_files=(str(pki.card_ca.cert_path),))
    out = BytesIO()
    await signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="ContractorSignature",
                                     subfilter=fields.SigSeedSubFilter.PADES),
        signer=signer,
        timestamper=HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots)),
    ).async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=out)
    return card, out.getvalue()


async def open_and_review(w: World, pdf: bytes) -> Any:
    await w.send(ContractCaseOpened(
        case_id=CASE, subject="市道改良工事", amount_yen=25_300_000, contractor_network="tochigi",
        contractor_user_id="U0042", contractor_name="デモ建設株式会社", city_name="足利市",
        city_officer=CITY, opened_at=w.clock.now))
    await w.send(ElectronicContractApplication(case_id=CASE, work_name="市道改良工事",
                                               authorized=BOSS, applied_at=w.clock.now))
    with Session(w.engine) as session, session.begin():
        ref = put_document(session, "請負契約書.pdf", pdf, w.clock.now)
    await w.send(ContractSetPrepared(case_id=CASE, title="請負契約書", document=ref))
    (sent,) = [e.payload for e in w.published(Topics.CONTRACT_EVENTS.name)
               if e.type == "econtract.review-link-sent"][-1:]
    return sent


async def test_card_route_from_bid_opening_to_conclusion(world: World, pki: DevPki,
                                                         tsa: ReferenceTsa,
                                                         tmp_path: Path) -> None:
    w = world
    pdf = make_pdf(12_000, "Contract R8-0042")
    sent = await open_and_review(w, pdf)
    (review_mail,) = [e.payload for e in w.published(Topics.MAIL_REQUESTS.name)]
    assert review_mail.kind is MailKind.CONTRACT_REVIEW
    assert review_mail.values["review_url"].startswith("https://hub.example/contract/review/")
    assert str(sent.link_id) not in review_mail.values["review_url"]  # the token, not the id

    agree = await w.send(ContractorAgreed(case_id=CASE, link_id=sent.link_id, by=BOSS.email))
    await w.deliver(agree)  # redelivered: no second signing job
    with Session(w.engine) as session:
        (job,) = session.exec(sa.select(SigningJobRow)).all()  # type: ignore[call-overload]
        job = job[0]
        assert (job.user_id, job.document, job.status) == ("U0042", pdf, "pending")
    # The card agent returns the signed PDF; the gateway validates it (CON-5, PIN-2).
    card, signed_by_card = await contractor_sign(pdf, pki, tsa)
    who = register_card(w.engine, card, w.clock.now)
    cfg = GatewayConfig(engine=w.engine, card_roots=pki.trust_roots,
                        signature_roots=pki.trust_roots, clock=w.clock,
                        on_signed=accept_contractor_signature)
    at = signed_by_card.index(b"Contract R8-0042")
    edited = signed_by_card[:at] + b"K" + signed_by_card[at + 1:]
    with pytest.raises(GatewayRefusalError) as refused:  # an edited PDF is refused
        await asyncio.to_thread(accept_signed, cfg, who, job.id, edited)
    assert [v.rule_id for v in refused.value.violations] == ["CON-5"]
    await asyncio.to_thread(accept_signed, cfg, who, job.id, signed_by_card)
    # the gateway's own transaction queued the next step: no job had to run
    assert await w.run_job_commands() == 1
    assert w.status() is ContractStatus.CONTRACTOR_SIGNED
    with Session(w.engine) as session, session.begin():
        assert collect_contractor_signatures(session, w.clock.now) == 0

    await w.send(CityAgreed(case_id=CASE, by=CITY.email))
    assert w.status() is ContractStatus.CITY_AGREED
    (agreed,) = [e for e in w.published(Topics.CONTRACT_EVENTS.name)
                 if e.type == "econtract.step-recorded"
                 and e.payload.status is ContractStatus.CITY_AGREED]
    # a token that refuses leaves the case waiting (retried later), nothing half-done
    refusing = signer_processor(w, RefusingToken(), "refusing")
    report = await refusing.process([delivery_of(agreed, 1)])
    assert report.retried == 1
    assert w.status() is ContractStatus.CITY_AGREED
    assert city_signatures(w.engine) == []
    city = CountingSigner(FileKeyCitySigner(pki, tsa))
    signing = signer_processor(w, city, "city-signer")
    assert (await signing.process([delivery_of(agreed, 1)])).done == 1
    assert (await signing.process([delivery_of(agreed, 1)])).duplicate == 1  # once
    # the process died after signing, before its offset and marker: the redelivery
    # reuses the recorded signature, with no second signature nor timestamp
    with w.engine.begin() as conn:
        conn.execute(sa.delete(ProcessedMessage.__table__))  # type: ignore[attr-defined]
    assert (await signing.process([delivery_of(agreed, 1)])).done == 1
    assert city.calls == 1
    assert len(city_signatures(w.engine)) == 1
    applied = [e for e in w.published(Topics.CONTRACT_COMMANDS.name)
               if e.type == "econtract.city-signed"]
    assert len(applied) == 2
    assert applied[0].payload == applied[1].payload
    for env in applied:
        await w.deliver(env)  # the second one is refused as a wrong step: no second effect
    assert w.status() is ContractStatus.CONCLUDED
    assert [t for t in w.types() if t == "econtract.concluded"] == ["econtract.concluded"]

    concluded = [e.payload for e in w.published(Topics.MAIL_REQUESTS.name)
                 if e.payload.kind is MailKind.CONTRACT_CONCLUDED]
    assert [m.to for m in concluded] == [("boss@demo.co.jp",), ("keiyaku@city.ashikaga.jp",)]
    ref = concluded[0].attachment_ref
    assert ref is not None
    # the mail connector reads it from the shared store, not from a directory
    docs = MailDocuments(SqlDocumentStore(w.engine),
                         LinkSigner("https://hub.example", b"k" * 32))
    signed = await docs.read(ref)
    report = await async_validate_contract_pdf(signed, pki.trust_roots)
    assert [s.field_name for s in report.signatures] == ["ContractorSignature", "CitySignature"]
    assert report.valid, report

    # registered in the ERP in the same transaction, 企業ID from the contractor's registration
    (erp,) = w.published(Topics.ERP_COMMANDS.name)
    assert erp.correlation_id == CASE
    assert isinstance(erp.payload, ErpRegistrationRequested)
    assert erp.payload.kind is ErpRegistrationKind.CONTRACT
    assert (erp.payload.business_key, erp.payload.contract_number) == (f"contract-{CASE}", CASE)
    assert (erp.payload.contractor_id, erp.payload.amount_jpy) == ("1" * 16, 25_300_000)
    assert erp.payload.contract_date == w.clock.now.astimezone(JST).date()
    assert erp.payload.period_start == erp.payload.contract_date  # no 工期 given: the default
    assert erp.payload.period_end == default_period(erp.payload.contract_date)[1]
    assert await w.run_job_commands() == 0
    for env in applied:
        await w.deliver(env)  # the city's signature redelivered: still one registration
    assert len(w.published(Topics.ERP_COMMANDS.name)) == 1


async def test_expired_link_is_refused_then_resent_and_the_timer_expires_it(
        world: World) -> None:
    w = world
    sent = await open_and_review(w, make_pdf(3_000))
    late = w.clock.now + timedelta(days=7, minutes=1)
    await w.send(ContractorAgreed(case_id=CASE, link_id=sent.link_id, by=BOSS.email),
                 acted_at=late)
    rejected = w.published(Topics.CONTRACT_EVENTS.name)[-1]
    assert rejected.type == "econtract.step-rejected"
    assert [v.rule_id for v in rejected.payload.violations] == ["CON-3"]
    assert w.status() is ContractStatus.REVIEW

    w.clock.now = late
    (timeouts,) = jobs(clock=w.clock)  # the ScheduledJob the hub runs
    assert timeouts.name == "contract-timeouts"
    assert await timeouts.run(w.engine) == (1, 0)  # one link due, no signature to collect
    await w.run_job_commands()
    assert w.types()[-1] == "econtract.review-link-expired"
    with Session(w.engine) as session, session.begin():
        assert expire_review_links(session, w.clock.now) == 0  # once

    await w.send(ReviewLinkResendRequested(case_id=CASE, requested_by="BOSS@demo.co.jp"))
    fresh = [e.payload for e in w.published(Topics.CONTRACT_EVENTS.name)
             if e.type == "econtract.review-link-sent"][-1]
    assert fresh.link_id != sent.link_id
    assert fresh.expires_at == w.clock.now + timedelta(days=7)
    assert len(w.published(Topics.MAIL_REQUESTS.name)) == 2
    await w.send(ContractorAgreed(case_id=CASE, link_id=fresh.link_id, by=BOSS.email))
    assert w.status() is ContractStatus.CONTRACTOR_AGREED


async def test_contractor_rejection_and_out_of_order_steps(world: World) -> None:
    w = world
    await w.send(CityAgreed(case_id=CASE, by=CITY.email))  # no such case yet
    assert w.published(Topics.CONTRACT_EVENTS.name)[-1].payload.violations[0].rule_id == "CON-2"
    sent = await open_and_review(w, make_pdf(3_000))
    await w.send(ContractorRejected(case_id=CASE, link_id=sent.link_id, by=BOSS.email,
                                    reason="工期が異なります"))
    assert w.status() is ContractStatus.REJECTED
    step = w.published(Topics.CONTRACT_EVENTS.name)[-1].payload
    assert (step.status, step.agreed, step.parties) == (ContractStatus.REJECTED, 0, 2)
    await w.send(ContractorAgreed(case_id=CASE, link_id=sent.link_id, by=BOSS.email))
    assert w.types()[-1] == "econtract.step-rejected"
    with Session(w.engine) as session:
        assert session.exec(sa.select(SigningJobRow)).all() == []  # type: ignore[call-overload]
