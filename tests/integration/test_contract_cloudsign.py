"""The CloudSign route of the contract process, with the real CloudSign connector and the
reference CloudSign service on loopback, through two real Processors on SQLite and
PostgreSQL (CON-2, CON-6, CON-7).

The city's policy says CloudSign: the archived set goes to CloudSign's store and out as
ContractSendRequested; the connector sends it (ContractSent); every party agrees at
CloudSign; the completion is re-read and published (ContractConcluded); the process
concludes the case and archives the sealed PDF. A rejection at CloudSign
(ContractDeclined) leaves the case rejected.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.cloudsign import CloudSignConnector, CloudSignSettings
from connectors.cloudsign.effects import effects
from connectors.cloudsign.inbound import WEBHOOK_PATH
from connectors.cloudsign.peer import CloudSignPeer
from connectors.dsure.loopback import LoopbackServer
from hub.consumers import ConsumerSpec
from hub.contract.cloudsign_hook import cloudsign_webhook
from hub.contract.wiring import consumers
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.contract.store import get_document, load_case, put_document
from schemas.cloudsign import ContractCompletionNotified
from schemas.contract import (
    ContractCaseOpened,
    ContractParty,
    ContractRoute,
    ContractSetPrepared,
    ContractStatus,
    ElectronicContractApplication,
)
from schemas.envelope import Envelope, new_envelope
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec
from schemas.wire import decode, encode
from tests.card.pdfs import make_pdf

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
CASE = "R8-0200"
CLIENT_ID = "hub-cloudsign-client"


@dataclass
class Route:
    contract: Processor
    cloudsign: Processor
    engine: Engine
    offset: int = 0
    relayed: int = 0

    async def deliver(self, proc: Processor, env: Envelope[Any], topic: str) -> None:
        key, value, headers = encode(env)
        self.offset += 1
        await proc.process([Delivery(topic=topic, partition=0, offset=self.offset, key=key,
                                     value=value, headers=headers)])

    async def command(self, payload: Payload, proc: Processor | None = None) -> None:
        env = new_envelope(payload, correlation_id=CASE, procuring_entity="ashikaga-city",
                           producer="test")
        await self.deliver(proc or self.contract, env, Topics.CONTRACT_COMMANDS.name)

    async def relay(self) -> None:
        """What Kafka would carry: every new outbox record to both consumers."""
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic.in_(
                (Topics.CONTRACT_COMMANDS.name, Topics.CONTRACT_EVENTS.name))
            ).order_by(OUTBOX.c.id)))
        fresh, self.relayed = rows[self.relayed:], len(rows)
        for row in fresh:
            env = decode(row.value, load_headers(row.headers))
            for proc in (self.contract, self.cloudsign):
                await self.deliver(proc, env, row.topic)

    def state(self) -> Any:
        with Session(self.engine) as session:
            return load_case(session, CASE)


@pytest.fixture
def peer() -> Iterator[CloudSignPeer]:
    server = CloudSignPeer(client_id=CLIENT_ID)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def route(engine: Engine, peer: CloudSignPeer, tmp_path: Path) -> AsyncIterator[Route]:
    conn = CloudSignConnector(CloudSignSettings(
        base_url=peer.url, client_id=CLIENT_ID, document_dir=tmp_path,  # type: ignore[arg-type]
        timeout_s=2.0, retry_attempts=2, retry_base_s=0.01, retry_max_s=0.02))
    (spec,) = consumers(cloudsign_store=conn.store)
    retry = RetrySettings(max_attempts=2, base_delay_s=1)
    cloudsign = Processor(ConsumerSpec("connector.cloudsign", (Topics.CONTRACT_COMMANDS,),
                                       handlers=effects(conn)), engine, retry, producer="test",
                          rng=random.Random(3))
    yield Route(Processor(spec, engine, retry, producer="test", rng=random.Random(4)),
                cloudsign, engine)
    await conn.aclose()


async def sent_for_signature(r: Route) -> str:
    now = datetime.now(UTC)
    await r.command(ContractCaseOpened(
        case_id=CASE, subject="庁舎清掃業務委託", amount_yen=3_960_000,
        contractor_network="tochigi", contractor_user_id="U0200",
        contractor_name="株式会社デモ商事", city_name="足利市",
        city_officer=ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp"),
        route=ContractRoute.CLOUDSIGN, opened_at=now))
    await r.command(ElectronicContractApplication(
        case_id=CASE, work_name="庁舎清掃業務委託", applied_at=now,
        authorized=ContractParty(name="田中 太郎", email="tanaka@demo.co.jp")))
    with Session(r.engine) as session, session.begin():
        ref = put_document(session, "委託契約書.pdf", make_pdf(4_000, "Contract R8-0200"), now)
    await r.command(ContractSetPrepared(case_id=CASE, title="委託契約書", document=ref))
    assert r.state().status is ContractStatus.SENT_TO_CLOUDSIGN
    await r.relay()  # ContractSendRequested → the connector → ContractSent
    await r.relay()  # ContractSent → the process records CloudSign's document id
    document_id = r.state().cloudsign_document_id
    assert document_id
    return str(document_id)


async def test_cloudsign_route_concludes_and_archives_the_sealed_pdf(
        route: Route, peer: CloudSignPeer) -> None:
    document_id = await sent_for_signature(route)
    assert [p["email"] for p in peer.document(document_id)["participants"]][-2:] == [
        "tanaka@demo.co.jp", "keiyaku@city.ashikaga.jp"]
    peer.agree_all(document_id, notify=False)
    await route.command(ContractCompletionNotified(document_id=document_id, case_id=CASE,
                                                   status=2), route.cloudsign)
    await route.relay()  # ContractConcluded → the process
    state = route.state()
    assert (state.status, state.agreed) == (ContractStatus.CONCLUDED, 2)
    assert state.signed.uri.startswith("contract-doc:")  # archived in the hub (CON-7)
    with Session(route.engine) as session:
        assert get_document(session, state.signed).startswith(b"%PDF-")


async def test_rejection_at_cloudsign_leaves_the_case_rejected(
        route: Route, peer: CloudSignPeer) -> None:
    document_id = await sent_for_signature(route)
    peer.reject(document_id, notify=False)
    await route.command(ContractCompletionNotified(document_id=document_id, case_id=CASE,
                                                   status=3), route.cloudsign)
    await route.relay()
    assert route.state().status is ContractStatus.REJECTED


async def test_a_note_edited_in_cloudsign_changes_nothing(
        route: Route, peer: CloudSignPeer) -> None:
    document_id = await sent_for_signature(route)
    peer.document(document_id)["note"] = "担当者がメモを書き換えた"  # CloudSign's screens allow it
    peer.agree_all(document_id, notify=False)
    await route.command(ContractCompletionNotified(document_id=document_id, case_id=CASE,
                                                   status=2), route.cloudsign)
    await route.relay()
    assert route.state().status is ContractStatus.CONCLUDED


HOOK_TOKEN = "h" * 43


async def test_the_webhook_finds_the_case_by_document_id_and_repeats_cost_nothing(
        route: Route, peer: CloudSignPeer) -> None:
    """100 posts of the same webhook: one message, one re-read; a document the hub did not
    send, a wrong token, a huge or deeply nested body publish nothing (CSW-1 … CSW-3)."""
    document_id = await sent_for_signature(route)
    published: list[Envelope[Any]] = []

    async def publish(topic: TopicSpec, envelope: Envelope[Any]) -> None:
        assert topic is Topics.CONTRACT_COMMANDS
        published.append(envelope)

    app = FastAPI()
    app.include_router(cloudsign_webhook(route.engine, publish, CloudSignSettings(
        webhook_token=HOOK_TOKEN)))  # type: ignore[arg-type]
    peer.agree_all(document_id, notify=False)
    with LoopbackServer(app) as hub:
        peer.hook_url = f"{hub.url}{WEBHOOK_PATH}/{HOOK_TOKEN}"
        assert {peer.notify(document_id) for _ in range(100)} == {200}
        hook = f"{hub.url}{WEBHOOK_PATH}/{HOOK_TOKEN}"
        async with httpx.AsyncClient() as client:
            other = await client.post(hook, json={"documentID": "not-ours", "status": 2})
            wrong = await client.post(f"{hub.url}{WEBHOOK_PATH}/{'x' * 43}",
                                      json={"documentID": document_id, "status": 2})
            huge = await client.post(hook, content=b'{"documentID": "' + b"a" * 40_000 + b'"}')
            deep = await client.post(hook, content=b"[" * 5_000 + b"]" * 5_000)
    assert other.json() == {"ignored": "not-ours"}
    assert (wrong.status_code, wrong.json()["violations"][0]["rule_id"]) == (404, "CSW-1")
    assert (huge.status_code, huge.json()["violations"][0]["rule_id"]) == (413, "CSW-2")
    assert (deep.status_code, deep.json()["violations"][0]["rule_id"]) == (400, "CSW-3")
    assert len({e.message_id for e in published}) == 1
    (first, *_) = published
    assert (first.correlation_id, first.payload.case_id) == (CASE, CASE)
    before = peer.faults.requests
    for envelope in published * 3:  # Kafka redelivers: the consumer drops the repeats
        await route.deliver(route.cloudsign, envelope, Topics.CONTRACT_COMMANDS.name)
    await route.relay()
    assert route.state().status is ContractStatus.CONCLUDED
    reads = peer.faults.requests - before
    assert reads == 3  # one GET of the document, one of its file, one of the certificate
