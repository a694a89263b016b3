"""The review page and the city's staff endpoints over HTTP, with the process manager
behind them through the real Processor, on SQLite and PostgreSQL (CON-1, CON-2, CON-3).

The city uploads the contract set; the review mail and the one-time code travel through
the mail connector to a real SMTP server (aiosmtpd), and the contractor uses what
arrived there: opens the link, reads the PDF, asks for a code and agrees with it. Links
are random and kept only hashed: the case number opens nothing. Expired, replaced, spent
and unknown links are refused with 410/404 pages; a missing, wrong or exhausted code
with 403; a re-send from an expired link brings a new link; every view and action is
audited with the client address; expired links are purged.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.mail import DirectoryDocumentStore, MailConnector, MailSettings
from connectors.mail.peer import SmtpPeer
from hub.contract.archive_api import archive_router
from hub.contract.review_api import review_router
from hub.contract.wiring import consumers
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.gateway.purge import purge_edge
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.audit import AuditRecord, verify
from pipelines.contract.links import CODE_ATTEMPTS, token_sha256
from pipelines.contract.models import ReviewLinkRow
from pipelines.contract.rules import LINK_NAMESPACE
from pipelines.contract.state import ContractPolicy
from pipelines.contract.store import load_case
from schemas.contract import (
    ContractCaseOpened,
    ContractParty,
    ContractStatus,
    ElectronicContractApplication,
)
from schemas.envelope import Envelope, new_envelope
from schemas.mail import MailRequested
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.card.pdfs import make_pdf
from tests.support.processing import Clock
from tests.support.staff import AUTH, every_entity

pytestmark = [pytest.mark.postgres, pytest.mark.smtp]

OUTBOX = OutboxRecord.__table__
CASE = "R8-0300"
ENTITY = "ashikaga-city"
BOSS = ContractParty(name="足利 一郎", email="boss@demo.co.jp")
CLERK = ContractParty(name="田中 太郎", email="tanaka@demo.co.jp")


HTML = {"accept": "text/html"}
URL = re.compile(r"https?://\S+/contract/review/(\S+)")
CODE = re.compile(r"確認コード : ([0-9]{6})")


@dataclass
class Site:
    http: TestClient
    proc: Processor
    engine: Engine
    clock: Clock
    smtp: SmtpPeer
    mail: MailConnector
    offset: int = 0
    relayed: int = 0
    mailed: int = 0

    async def deliver(self, env: Envelope[Any]) -> None:
        key, value, headers = encode(env)
        self.offset += 1
        await self.proc.process([Delivery(topic=Topics.CONTRACT_COMMANDS.name, partition=0,
                                          offset=self.offset, key=key, value=value,
                                          headers=headers)])

    def _rows(self, topic: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == topic)
                                     .order_by(OUTBOX.c.id)))

    async def relay(self) -> None:
        rows = self._rows(Topics.CONTRACT_COMMANDS.name)
        fresh, self.relayed = rows[self.relayed:], len(rows)
        for row in fresh:
            await self.deliver(decode(row.value, load_headers(row.headers)))

    async def post_mails(self) -> list[str]:
        """The mails the hub asked for since the last call, sent by the mail connector to
        the SMTP server; their bodies as that server received them."""
        rows = self._rows(Topics.MAIL_REQUESTS.name)
        fresh, self.mailed = rows[self.mailed:], len(rows)
        before = len(self.smtp.received)
        for row in fresh:
            request = decode(row.value, load_headers(row.headers)).payload
            assert isinstance(request, MailRequested)
            await self.mail.send(request)
        arrived = self.smtp.wait_for(before + len(fresh))[before:]
        return [str(m.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                for m in arrived]

    async def link(self) -> str:
        """The token of the newest review link, as the contractor's mailbox got it."""
        await self.relay()
        bodies = [b for b in await self.post_mails() if URL.search(b)]
        assert bodies, "no review mail arrived"
        match = URL.search(bodies[-1])
        assert match is not None
        return match.group(1)

    async def code(self, token: str, by: str = BOSS.email) -> str:
        asked = self.http.post(f"/contract/review/{token}/code", json={"by": by})
        assert asked.status_code == 202, asked.text
        (body,) = await self.post_mails()
        match = CODE.search(body)
        assert match is not None, body
        return match.group(1)

    def state(self) -> Any:
        with Session(self.engine) as session:
            return load_case(session, CASE)

    def last_event(self) -> Envelope[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(OUTBOX)
                               .where(OUTBOX.c.topic == Topics.CONTRACT_EVENTS.name)
                               .order_by(OUTBOX.c.id.desc()).limit(1)).one()
        return decode(row.value, load_headers(row.headers))


@pytest.fixture
def site(engine: Engine, tmp_path: Any) -> Iterator[Site]:
    policy = ContractPolicy(review_link_ttl=timedelta(days=7),
                            review_base_url="https://hub.example/contract/review")
    clock = Clock()
    (spec,) = consumers(policy=policy)
    proc = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=clock, rng=random.Random(8))
    app = FastAPI()
    app.include_router(review_router(engine, clock, policy=policy))
    app.include_router(archive_router(engine, (), clock, identity=every_entity(), policy=policy))
    with SmtpPeer() as smtp, TestClient(app, headers=AUTH) as http:
        settings = MailSettings(host="127.0.0.1", port=smtp.port, timeout_s=5,
                                from_address="no-reply@city.example", documents_dir=tmp_path,
                                documents_base_url="https://hub.example/documents")
        mail = MailConnector(settings, documents=DirectoryDocumentStore(
            tmp_path, settings.documents_base_url, b"test-link-signing-key-0123456789"))
        yield Site(http, proc, engine, clock, smtp, mail)


async def in_review(site: Site) -> str:
    for payload in (
        ContractCaseOpened(case_id=CASE, subject="橋梁補修工事", amount_yen=48_000_000,
                           contractor_network="tochigi", contractor_user_id="U0300",
                           contractor_name="デモ建設株式会社", city_name="足利市",
                           city_officer=ContractParty(name="契約 花子",
                                                      email="keiyaku@city.ashikaga.jp"),
                           opened_at=site.clock.now),
        ElectronicContractApplication(case_id=CASE, work_name="橋梁補修工事", authorized=BOSS,
                                      officers=(CLERK,), applied_at=site.clock.now),
    ):
        await site.deliver(new_envelope(payload, correlation_id=CASE,
                                        procuring_entity="ashikaga-city", producer="test"))
    pdf = make_pdf(4_000, "Contract R8-0300")
    sent = site.http.post(f"/contracts/{CASE}/contract-set", params={"title": "請負契約書"},
                          content=pdf, headers={"content-type": "application/pdf"})
    assert sent.status_code == 202, sent.text
    return await site.link()


def csrf(page: str) -> str:
    """The CSRF field of a page's forms."""
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found is not None, page
    return found.group(1)


def violation(answer: Any) -> dict[str, Any]:
    (found,) = answer.json()["detail"]["violations"]
    assert isinstance(found, dict)
    return found


async def test_contractor_reads_and_agrees_with_the_mailed_code(site: Site) -> None:
    token = await in_review(site)
    page = site.http.get(f"/contract/review/{token}").json()
    assert (page["case_id"], page["title"]) == (CASE, "請負契約書")
    assert site.http.get(f"/contract/review/{token}", headers=HTML).text.count("R8-0300") == 1
    document = site.http.get(f"/contract/review/{token}/document")
    assert document.content.startswith(b"%PDF-")
    assert b"Contract R8-0300" in document.content
    code = await site.code(token)
    agreed = site.http.post(f"/contract/review/{token}/agree",
                            json={"by": BOSS.email, "code": code})
    assert agreed.status_code == 202, agreed.text
    await site.relay()
    state = site.state()
    assert (state.status, state.contractor_agreed_by) == (ContractStatus.CONTRACTOR_AGREED,
                                                          BOSS.email)
    # the link has done its job: reused, it is refused as spent, page and actions alike
    for answer in (site.http.get(f"/contract/review/{token}"),
                   site.http.post(f"/contract/review/{token}/agree",
                                  json={"by": BOSS.email, "code": code})):
        assert answer.status_code == 410
        assert violation(answer)["rule_id"] == "CON-3"


async def test_links_are_random_stored_hashed_and_the_case_number_opens_nothing(
        site: Site) -> None:
    token = await in_review(site)
    assert len(token) >= 43  # 256 bits, URL-safe base64
    state = site.state()
    with Session(site.engine) as session:
        (row,) = session.exec(sa.select(ReviewLinkRow)).all()  # type: ignore[call-overload]
    assert row[0].token_sha256 == token_sha256(token)
    assert row[0].link_id == str(state.link.link_id)
    with site.engine.connect() as conn:  # the token itself is nowhere in the database
        dump = " ".join(str(r) for t in ("con_case", "con_review_link")
                        for r in conn.execute(sa.text(f"select * from {t}")))
    assert token not in dump
    # what an attacker can compute or read: ids derived from the case, the link's id
    # from the events; none opens the page, the PDF, or rejects the case
    derived = [uuid.uuid5(LINK_NAMESPACE, f"{CASE}:link:{n}") for n in (1, 2)]
    for guess in (*derived, state.link.link_id, token_sha256(token), token[:-1]):
        assert site.http.get(f"/contract/review/{guess}").status_code == 404
        assert site.http.get(f"/contract/review/{guess}/document").status_code == 404
        forged = site.http.post(f"/contract/review/{guess}/reject",
                                json={"by": BOSS.email, "code": "123456", "reason": "forged"})
        assert forged.status_code == 404
    await site.relay()
    assert site.state().status is ContractStatus.REVIEW


async def test_agreeing_needs_the_code_mailed_to_that_address(site: Site) -> None:
    token = await in_review(site)
    agree = f"/contract/review/{token}/agree"
    assert site.http.post(agree, json={"by": BOSS.email}).status_code == 422  # no code
    none_asked = site.http.post(agree, json={"by": BOSS.email, "code": "000000"})
    assert none_asked.status_code == 403
    assert violation(none_asked)["field"] == "code"
    outsider = site.http.post(f"/contract/review/{token}/code",
                              json={"by": "someone@elsewhere.jp"})
    assert (outsider.status_code, violation(outsider)["rule_id"]) == (403, "CON-1")
    clerks = await site.code(token, CLERK.email)
    # the clerk's code is the clerk's: the 権限者 cannot agree with it
    assert site.http.post(agree, json={"by": BOSS.email, "code": clerks}).status_code == 403
    code = await site.code(token)  # replaces the clerk's
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(CODE_ATTEMPTS):
        refused = site.http.post(agree, json={"by": BOSS.email, "code": wrong})
        assert refused.status_code == 403
    exhausted = site.http.post(agree, json={"by": BOSS.email, "code": code})
    assert exhausted.status_code == 403  # five wrong tries: the right code is dead too
    assert "Too many" in violation(exhausted)["message_en"]
    code = await site.code(token)
    site.clock.now += timedelta(minutes=11)
    late = site.http.post(agree, json={"by": BOSS.email, "code": code})
    assert (late.status_code, violation(late)["message_en"]) == (
        403, "The confirmation code has expired.")
    code = await site.code(token)
    ok = site.http.post(f"/contract/review/{token}/reject",
                        json={"by": BOSS.email, "code": code, "reason": "金額が違います"})
    assert ok.status_code == 202
    await site.relay()
    assert site.state().status is ContractStatus.REJECTED


async def test_refusals_are_bilingual_pages_with_their_status(site: Site) -> None:
    token = await in_review(site)
    unknown = site.http.get("/contract/review/not-a-link", headers=HTML)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("text/html")
    assert "このリンクは無効です" in unknown.text.replace("この確認用リンクは無効です",
                                                      "このリンクは無効です")
    assert "not valid" in unknown.text
    assert "<form" not in unknown.text
    site.clock.now += timedelta(days=8)
    expired = site.http.get(f"/contract/review/{token}", headers=HTML)
    assert expired.status_code == 410
    assert "有効期限" in expired.text
    assert "expired" in expired.text
    assert f'action="/contract/review/{token}/form/resend"' in expired.text  # the way out
    forged = site.http.post(f"/contract/review/{token}/form/resend", data={"by": CLERK.email},
                            headers=HTML)  # the form without the page's CSRF field
    assert (forged.status_code, "EDGE-4") == (403, forged.text.split('class="rule">')[1][:6])
    resent = site.http.post(f"/contract/review/{token}/form/resend",
                            data={"by": CLERK.email, "csrf": csrf(expired.text)},
                            headers=HTML)  # the page's form
    assert resent.status_code == 202, resent.text
    assert "A new review link is being mailed" in resent.text
    fresh = await site.link()
    assert fresh != token
    assert site.http.get(f"/contract/review/{fresh}").status_code == 200
    replaced = site.http.get(f"/contract/review/{token}")
    assert replaced.status_code == 410
    assert violation(replaced)["message_en"] == "This review link was replaced by a newer one."
    evil = site.http.get("/contract/review/%3Cscript%3Ealert(1)%3C%2Fscript%3E", headers=HTML)
    assert evil.status_code == 404
    assert "<script>" not in evil.text


async def test_expired_link_answers_con3_and_resend_brings_a_new_one(site: Site) -> None:
    token = await in_review(site)
    code = await site.code(token)
    site.clock.now += timedelta(days=8)
    gone = site.http.post(f"/contract/review/{token}/agree",
                          json={"by": BOSS.email, "code": code})
    assert gone.status_code == 410
    assert (violation(gone)["rule_id"], violation(gone)["next_step_en"]) == (
        "CON-3", "Ask for the link to be sent again.")
    assert site.http.get(f"/contract/review/{token}/document").status_code == 410
    resent = site.http.post(f"/contract/review/{token}/resend", json={"by": CLERK.email})
    assert resent.status_code == 202
    fresh = await site.link()
    assert site.http.get(f"/contract/review/{fresh}").status_code == 200


async def test_every_view_and_action_is_audited_with_the_client(site: Site) -> None:
    token = await in_review(site)
    site.http.get(f"/contract/review/{token}")
    site.http.get(f"/contract/review/{token}/document")
    site.http.get("/contract/review/forged-token")
    code = await site.code(token)
    site.http.post(f"/contract/review/{token}/agree", json={"by": BOSS.email, "code": "999999"
                                                            if code != "999999" else "000000"})
    site.http.post(f"/contract/review/{token}/agree", json={"by": BOSS.email, "code": code})
    with Session(site.engine) as session:
        rows = [r for (r,) in session.exec(sa.select(AuditRecord).where(  # type: ignore[call-overload]
            AuditRecord.action.startswith("review.")).order_by(  # type: ignore[attr-defined]
            AuditRecord.id))]  # type: ignore[arg-type]
        chain = verify(session)
    seen = [(r.action, json.loads(r.detail)["status"], r.outcome, r.actor, r.target, r.entity)
            for r in rows]

    assert seen == [
        ("review.view", 200, "ok", "anonymous", CASE, ENTITY),
        ("review.document", 200, "ok", "anonymous", CASE, ENTITY),
        ("review.view", 404, "refused", "anonymous", "-", ""),
        ("review.code", 202, "ok", BOSS.email, CASE, ENTITY),
        ("review.agree", 403, "denied", BOSS.email, CASE, ENTITY),
        ("review.agree", 202, "ok", BOSS.email, CASE, ENTITY)]
    assert {r.client for r in rows} == {"testclient"}
    assert {r.actor_kind for r in rows} == {"contractor"}
    links = {json.loads(r.detail)["link_id"] for r in rows}
    assert len(links - {None}) == 1  # the one link, by its id
    assert all(token not in str(r.model_dump()) and code not in str(r.model_dump())
               for r in rows)
    # the review rows are part of the one hash chain: `hub audit verify` covers them
    assert chain.ok, chain.reason
    assert chain.checked >= len(rows)


async def test_forward_outside_the_application_is_refused_by_con1(site: Site) -> None:
    token = await in_review(site)
    forwarded = site.http.post(f"/contract/review/{token}/forward",
                               json={"by": CLERK.email, "to": "someone@elsewhere.jp"})
    assert forwarded.status_code == 422
    assert (violation(forwarded)["rule_id"], violation(forwarded)["field"]) == ("CON-1", "to")
    assert "新しい電子契約利用申出書" in violation(forwarded)["next_step_ja"]
    ok = site.http.post(f"/contract/review/{token}/forward",
                        json={"by": CLERK.email, "to": BOSS.email})
    assert ok.status_code == 202
    fresh = await site.link()
    assert site.last_event().type == "econtract.review-link-sent"
    assert fresh != token  # the forward made a new link for the 権限者
    assert site.http.get(f"/contract/review/{token}").status_code == 410


async def test_expired_links_are_purged_then_open_nothing(site: Site) -> None:
    token = await in_review(site)
    keep = timedelta(days=30)
    assert purge_edge(site.engine, site.clock.now, keep).review_links == 0
    site.clock.now += timedelta(days=8)
    assert site.http.get(f"/contract/review/{token}").status_code == 410  # re-send offered
    assert purge_edge(site.engine, site.clock.now, keep).review_links == 0
    site.clock.now += keep
    assert purge_edge(site.engine, site.clock.now, keep).review_links == 1
    assert site.http.get(f"/contract/review/{token}").status_code == 404


async def test_city_steps_out_of_order_are_refused_at_once(site: Site) -> None:
    await in_review(site)
    early = site.http.post(f"/contracts/{CASE}/city-agreement",
                           json={"by": "keiyaku@city.ashikaga.jp"})
    assert early.status_code == 422
    assert early.json()["detail"]["violations"][0]["rule_id"] == "CON-2"
    again = site.http.post(f"/contracts/{CASE}/contract-set", params={"title": "二重"},
                           content=make_pdf(2_000, "other"),
                           headers={"content-type": "application/pdf"})
    assert again.status_code == 422  # a set is already out for review


def test_staff_endpoints_name_the_rule_for_an_unknown_case(site: Site) -> None:
    answer = site.http.post("/contracts/R9-9999/city-agreement",
                            json={"by": "keiyaku@city.ashikaga.jp"})
    assert answer.status_code == 404
    assert answer.json()["detail"]["violations"][0]["rule_id"] == "CON-2"
    assert site.http.get("/contract/review/00000000-0000-0000-0000-000000000000"
                         ).status_code == 404
