"""The 電子契約利用申出書 sent through the オンライン申請システム reaches the contract process
(CON-1, CON-2), and its corrections go back through the online system.

Real parts: the reference online application system on loopback, the application
connector and the contract process manager each in the hub's own Processor, on SQLite
and PostgreSQL. What one publishes is handed to the other as Kafka would.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.application import ApplicationConnector, ApplicationSettings, message_id_for
from connectors.application.effects import effects
from connectors.application.peer import ApplicationPeer
from hub.consumers import ConsumerSpec
from hub.contract.wiring import consumers
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.contract.state import ContractPolicy
from pipelines.contract.store import load_case
from schemas.application import ApplicationSubmitted
from schemas.contract import ContractCaseOpened, ContractParty, ContractStatus
from schemas.envelope import Envelope, new_envelope
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.support.processing import Clock

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
TOKEN = "hub-app-token"
CASE = "R8-0077"
CITY = ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp")
FORM = {"工事名": "市道改良工事", "工事場所": "足利市本城地内",
        "契約締結権限者氏名": "足利 一郎", "契約締結権限者メールアドレス": "boss@demo.co.jp",
        "契約担当者1氏名": "担当 次郎", "契約担当者1メールアドレス": "tanto@demo.co.jp"}


@dataclass
class Hub:
    engine: Engine
    peer: ApplicationPeer
    connector: Processor
    contract: Processor
    clock: Clock
    offsets: dict[str, int] = field(default_factory=dict)
    handed: set[int] = field(default_factory=set)

    async def deliver(self, proc: Processor, topic: str, env: Envelope[Any]) -> None:
        key, value, headers = encode(env)
        self.offsets[topic] = self.offsets.get(topic, 0) + 1
        await proc.process([Delivery(topic=topic, partition=0, offset=self.offsets[topic],
                                     key=key, value=value, headers=headers)])

    def published(self, topic: str) -> list[tuple[int, Envelope[Any]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == topic)
                                .order_by(OUTBOX.c.id))
            return [(r.id, decode(r.value, load_headers(r.headers))) for r in rows]

    async def hand_on(self) -> None:
        """What the connector and the process published, to the other (as Kafka would)."""
        for topic, proc in ((Topics.APPLICATION_EVENTS.name, self.contract),
                            (Topics.APPLICATION_COMMANDS.name, self.connector)):
            for row_id, env in self.published(topic):
                if row_id not in self.handed:
                    self.handed.add(row_id)
                    await self.deliver(proc, topic, env)

    async def submit(self, answers: dict[str, str]) -> str:
        app_id = self.peer.submit(case_no=CASE, procedure="電子契約利用申出書",
                                  company="デモ建設株式会社", answers=answers)
        env = new_envelope(ApplicationSubmitted(application_id=app_id),
                           correlation_id=app_id, procuring_entity="ashikaga-city",
                           producer="test", message_id=message_id_for(app_id))
        await self.deliver(self.connector, Topics.APPLICATION_COMMANDS.name, env)
        await self.hand_on()  # ApplicationReceived to the contract process
        await self.hand_on()  # its correction, if any, back to the connector
        return app_id

    def case(self) -> Any:
        with Session(self.engine) as session:
            return load_case(session, CASE)


@pytest.fixture
def peer() -> Iterator[ApplicationPeer]:
    server = ApplicationPeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def hub(engine: Engine, peer: ApplicationPeer) -> AsyncIterator[Hub]:
    conn = ApplicationConnector(ApplicationSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=2.0, retry_attempts=2,  # type: ignore[arg-type]
        retry_base_s=0.01, retry_max_s=0.02, breaker_failures=50))
    clock = Clock()
    retry = RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2)
    connector = Processor(ConsumerSpec("connector.application", (Topics.APPLICATION_COMMANDS,),
                                       handlers=effects(conn)),
                          engine, retry, producer="test", clock=clock, rng=random.Random(3))
    (spec,) = consumers(policy=ContractPolicy(
        review_link_ttl=timedelta(days=7), review_base_url="https://hub.example/contract/review"))
    contract = Processor(spec, engine, retry, producer="test", clock=clock,
                         rng=random.Random(5))
    hub = Hub(engine, peer, connector, contract, clock)
    await hub.deliver(contract, Topics.CONTRACT_COMMANDS.name, new_envelope(
        ContractCaseOpened(case_id=CASE, subject="市道改良工事", amount_yen=25_300_000,
                           contractor_network="tochigi", contractor_user_id="U0077",
                           contractor_name="デモ建設株式会社", city_name="足利市",
                           city_officer=CITY, opened_at=clock.now),
        correlation_id=CASE, procuring_entity="ashikaga-city", producer="test"))
    yield hub
    await conn.aclose()


async def test_the_online_application_opens_the_contract_step(hub: Hub) -> None:
    await hub.submit(FORM)
    state = hub.case()
    assert state.status is ContractStatus.APPLIED
    assert state.authorized == ContractParty(name="足利 一郎", email="boss@demo.co.jp")
    assert [o.email for o in state.officers] == ["tanto@demo.co.jp"]
    assert hub.peer.corrections == {}


@pytest.mark.parametrize("missing", ["契約締結権限者氏名", "契約締結権限者メールアドレス"])
async def test_a_missing_signatory_goes_back_as_a_correction_in_the_online_system(
        hub: Hub, missing: str) -> None:
    answers = {k: v for k, v in FORM.items() if not k.startswith("契約締結権限者")}
    if missing.endswith("氏名"):
        answers["契約締結権限者メールアドレス"] = "boss@demo.co.jp"
    else:
        answers["契約締結権限者氏名"] = "足利 一郎"
    await hub.submit(answers)
    assert hub.case().status is ContractStatus.OPENED  # nothing taken
    rejected = [e for _, e in hub.published(Topics.CONTRACT_EVENTS.name)
                if e.type == "econtract.step-rejected"]
    assert [v.rule_id for v in rejected[-1].payload.violations] == ["CON-1"]
    (correction,) = hub.peer.corrections.values()  # sent into the online system once
    assert correction["items"][0]["rule"] == "CON-1"
    # The corrected 申出書 is taken.
    await hub.submit(FORM)
    assert hub.case().status is ContractStatus.APPLIED


async def test_a_late_change_is_answered_through_the_online_system_too(hub: Hub) -> None:
    await hub.submit(FORM)
    with Session(hub.engine) as session, session.begin():  # the review is already over
        from pipelines.contract.store import save_case

        state = load_case(session, CASE)
        assert state is not None
        save_case(session, state.model_copy(update={"status": ContractStatus.CONTRACTOR_SIGNED}))
    await hub.submit({**FORM, "契約締結権限者メールアドレス": "new@demo.co.jp"})
    assert hub.case().authorized.email == "boss@demo.co.jp"
    (correction,) = hub.peer.corrections.values()
    assert correction["items"][0]["rule"] == "CON-1"


async def test_other_forms_are_not_the_contract_process_s(hub: Hub) -> None:
    app_id = hub.peer.submit(case_no=CASE, procedure="工程表", company="デモ建設株式会社")
    env = new_envelope(ApplicationSubmitted(application_id=app_id), correlation_id=app_id,
                       procuring_entity="ashikaga-city", producer="test",
                       message_id=message_id_for(app_id))
    await hub.deliver(hub.connector, Topics.APPLICATION_COMMANDS.name, env)
    await hub.hand_on()
    assert hub.case().status is ContractStatus.OPENED
    assert hub.published(Topics.APPLICATION_COMMANDS.name) == []  # no correction
    assert [e.type for _, e in hub.published(Topics.CONTRACT_EVENTS.name)] == [
        "econtract.step-recorded"]  # the case opening only
