"""The review page and the city's staff endpoints over HTTP, with the process manager
behind them through the real Processor, on SQLite and PostgreSQL (CON-1, CON-2, CON-3).

The city uploads the contract set; the contractor opens the review link, reads the PDF,
and agrees; an expired link answers 410 with CON-3 and a re-send from it brings a new
link; a forward to an address outside the 申出書 is refused by CON-1; the city agrees
for an unknown case and is told CON-2.
"""

from __future__ import annotations

import random
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

from hub.contract.archive_api import archive_router
from hub.contract.review_api import review_router
from hub.contract.wiring import consumers
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.contract.handlers import use_policy
from pipelines.contract.state import ContractPolicy
from pipelines.contract.store import load_case
from schemas.contract import (
    ContractCaseOpened,
    ContractParty,
    ContractStatus,
    ElectronicContractApplication,
)
from schemas.envelope import Envelope, new_envelope
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.card.pdfs import make_pdf
from tests.support.processing import Clock
from tests.support.staff import AUTH, every_entity

pytestmark = pytest.mark.postgres

OB = OutboxRecord.__table__
CASE = "R8-0300"
BOSS = ContractParty(name="足利 一郎", email="boss@demo.co.jp")
CLERK = ContractParty(name="田中 太郎", email="tanaka@demo.co.jp")


@dataclass
class Site:
    http: TestClient
    proc: Processor
    engine: Engine
    clock: Clock
    offset: int = 0
    relayed: int = 0

    async def deliver(self, env: Envelope[Any]) -> None:
        key, value, headers = encode(env)
        self.offset += 1
        await self.proc.process([Delivery(topic=Topics.CONTRACT_COMMANDS.name, partition=0,
                                          offset=self.offset, key=key, value=value,
                                          headers=headers)])

    async def relay(self) -> None:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OB).where(
                OB.c.topic == Topics.CONTRACT_COMMANDS.name).order_by(OB.c.id)))
        fresh, self.relayed = rows[self.relayed:], len(rows)
        for row in fresh:
            await self.deliver(decode(row.value, load_headers(row.headers)))

    def link(self) -> str:
        with Session(self.engine) as session:
            state = load_case(session, CASE)
        assert state is not None
        assert state.link is not None
        return str(state.link.link_id)

    def last_event(self) -> Envelope[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(OB).where(OB.c.topic == Topics.CONTRACT_EVENTS.name)
                               .order_by(OB.c.id.desc()).limit(1)).one()
        return decode(row.value, load_headers(row.headers))


@pytest.fixture
def site(engine: Engine) -> Iterator[Site]:
    use_policy(ContractPolicy(review_link_ttl=timedelta(days=7)))
    clock = Clock()
    (spec,) = consumers()
    proc = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=clock, rng=random.Random(8))
    app = FastAPI()
    app.include_router(review_router(engine, clock))
    app.include_router(archive_router(engine, (), clock, identity=every_entity()))
    with TestClient(app, headers=AUTH) as http:
        yield Site(http, proc, engine, clock)
    use_policy(None)


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
    await site.relay()
    return site.link()


async def test_contractor_reads_and_agrees_through_the_link(site: Site) -> None:
    link = await in_review(site)
    page = site.http.get(f"/contract/review/{link}").json()
    assert (page["case_id"], page["title"], page["usable"]) == (CASE, "請負契約書", True)
    document = site.http.get(f"/contract/review/{link}/document")
    assert document.content.startswith(b"%PDF-")
    assert b"Contract R8-0300" in document.content
    agreed = site.http.post(f"/contract/review/{link}/agree", json={"by": BOSS.email})
    assert agreed.status_code == 202
    await site.relay()
    with Session(site.engine) as session:
        state = load_case(session, CASE)
    assert state is not None
    assert (state.status, state.contractor_agreed_by) == (ContractStatus.CONTRACTOR_AGREED,
                                                          BOSS.email)
    # the link has done its job: the page still shows the case, actions are gone
    assert site.http.get(f"/contract/review/{link}").json()["usable"] is False
    assert site.http.post(f"/contract/review/{link}/agree",
                          json={"by": BOSS.email}).status_code == 410


async def test_expired_link_answers_con3_and_resend_brings_a_new_one(site: Site) -> None:
    link = await in_review(site)
    site.clock.now += timedelta(days=8)
    gone = site.http.post(f"/contract/review/{link}/agree", json={"by": BOSS.email})
    assert gone.status_code == 410
    (violation,) = gone.json()["detail"]["violations"]
    assert (violation["rule_id"], violation["next_step_en"]) == (
        "CON-3", "Ask for the link to be sent again.")
    assert site.http.get(f"/contract/review/{link}/document").status_code == 410
    resent = site.http.post(f"/contract/review/{link}/resend", json={"by": CLERK.email})
    assert resent.status_code == 202
    await site.relay()
    fresh = site.link()
    assert fresh != link
    assert site.http.get(f"/contract/review/{fresh}").json()["usable"] is True
    assert site.http.get(f"/contract/review/{link}").status_code == 410  # replaced


async def test_forward_outside_the_application_is_refused_by_con1(site: Site) -> None:
    link = await in_review(site)
    forwarded = site.http.post(f"/contract/review/{link}/forward",
                               json={"by": CLERK.email, "to": "someone@elsewhere.jp"})
    assert forwarded.status_code == 422
    (violation,) = forwarded.json()["detail"]["violations"]
    assert (violation["rule_id"], violation["field"]) == ("CON-1", "to")
    assert "新しい電子契約利用申出書" in violation["next_step_ja"]
    ok = site.http.post(f"/contract/review/{link}/forward",
                        json={"by": CLERK.email, "to": BOSS.email})
    assert ok.status_code == 202
    await site.relay()
    assert site.last_event().type == "econtract.review-link-sent"
    assert site.link() != link  # the forward made a new link for the 権限者


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
                         ).status_code == 410
