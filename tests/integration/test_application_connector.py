"""The online application connector against the reference system on loopback.

Webhook (signed) and polling both deliver a submission once (same message id);
key notice PDFs are read on receipt (SUR-1); corrections go back idempotently.
Faults: peer down, slow past the timeout, garbage, maintenance; each shows
retries, the reason the hub dead-letters, and nothing lost once the peer is back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from connectors._shared import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors._shared.health import HealthState
from connectors._shared.loopback import LoopbackServer
from connectors.application import ApplicationConnector, ApplicationSettings
from connectors.application.inbound import WEBHOOK_PATH, poll_forever, webhook_router
from connectors.application.peer import ApplicationPeer, PeerAttachment, sign_webhook
from connectors.dsure.noticepdf import render_key_notice
from schemas.application import CorrectionRequested, FormKind
from schemas.rejection import RuleViolation
from schemas.surety import SuretyProduct

TOKEN, SECRET = "app-token", "app-webhook-secret"
KEY = "Z28YUE4J3Bux"
ANSWERS = {"工事名": "市道1号線舗装工事", "契約締結権限者氏名": "足利 一郎",
           "契約締結権限者メールアドレス": "ichiro@example.co.jp"}


def key_notice(key: str = KEY) -> PeerAttachment:
    pdf = render_key_notice(contract_number="31072-0001M", auth_key=key,
                            work_name="市道1号線舗装工事", contractor_name="〇〇建設 株式会社",
                            product_ja="契約保証")
    return PeerAttachment(kind="電子保証に係る認証キーのお知らせ", filename="認証キー.pdf",
                          content=pdf)


@pytest.fixture
def peer() -> Iterator[ApplicationPeer]:
    server = ApplicationPeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


def settings_for(peer: ApplicationPeer, **overrides: object) -> ApplicationSettings:
    values: dict[str, object] = {
        "base_url": peer.url, "api_token": TOKEN, "webhook_secret": SECRET, "timeout_s": 0.5,
        "retry_attempts": 3, "retry_base_s": 0.01, "retry_max_s": 0.02,
        "breaker_failures": 10, "poll_limit": 10,
    }
    return ApplicationSettings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def connector(peer: ApplicationPeer) -> AsyncIterator[ApplicationConnector]:
    conn = ApplicationConnector(settings_for(peer))
    yield conn
    await conn.aclose()


@pytest.fixture
def announced(peer: ApplicationPeer) -> Iterator[list[str]]:
    """A real webhook receiver (the gateway's router) on loopback, subscribed to the peer."""
    ids: list[str] = []

    async def on_submitted(application_id: str) -> None:
        ids.append(application_id)

    app = FastAPI()
    app.include_router(webhook_router(settings_for(peer), on_submitted))
    with LoopbackServer(app) as receiver:
        peer.subscribe(receiver.url + WEBHOOK_PATH, SECRET)
        yield ids


def submit_e_contract(peer: ApplicationPeer, *attachments: PeerAttachment) -> str:
    return peer.submit(case_no="R5-0001", procedure="電子契約利用申出書",
                       company="〇〇建設株式会社", answers=ANSWERS, attachments=attachments)


async def test_webhook_announces_and_the_connector_reads_it_with_its_key_notice(
        peer: ApplicationPeer, connector: ApplicationConnector, announced: list[str]) -> None:
    app_id = submit_e_contract(peer, key_notice())
    assert announced == [app_id]
    received = await connector.receive(app_id)
    assert received.form is FormKind.E_CONTRACT_APPLICATION
    assert received.e_contract is not None
    assert received.e_contract.signatory.name == "足利 一郎"
    (notice,) = received.surety_notices
    assert (notice.contract_number, notice.auth_key) == ("31072-0001M", KEY)
    assert notice.product is SuretyProduct.PERFORMANCE
    assert received.problems == ()


async def test_webhook_and_poll_produce_the_same_message_id(
        peer: ApplicationPeer, connector: ApplicationConnector, announced: list[str]) -> None:
    app_id = submit_e_contract(peer)
    by_webhook = ApplicationConnector.envelope(await connector.receive(announced[0]),
                                               procuring_entity="ashikaga-city")
    (polled,) = (await connector.poll("0")).received
    by_poll = ApplicationConnector.envelope(polled, procuring_entity="ashikaga-city")
    assert by_webhook.message_id == by_poll.message_id
    assert by_webhook.correlation_id == "R5-0001"
    assert polled.application_id == app_id


async def test_forged_or_stale_webhooks_are_refused(peer: ApplicationPeer,
                                                    announced: list[str]) -> None:
    submit_e_contract(peer)
    url = peer._webhook[0]  # type: ignore[index]
    body = b'{"event": "application.submitted", "application_id": "A999999"}'
    now = int(time.time())
    forged = {"X-Signature-Timestamp": str(now), "X-Signature": sign_webhook("guess", now, body)}
    stale = {"X-Signature-Timestamp": str(now - 3600),
             "X-Signature": sign_webhook(SECRET, now - 3600, body)}
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, content=body, headers=forged)).status_code == 401
        assert (await client.post(url, content=body, headers=stale)).status_code == 401
    assert announced == ["A000001"]


async def test_polling_catches_up_when_webhooks_were_lost(
        peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    ids = [submit_e_contract(peer) for _ in range(3)]
    peer.submit(case_no="R5-0002", procedure="り災証明書交付申請書", company="〇〇建設株式会社")
    ids.append(peer.submit(case_no="R5-0002", procedure="工程表", company="〇〇建設株式会社",
                           attachments=(PeerAttachment("工程表", "工程表.xlsx", b"PK\x03\x04",
                                                       "application/vnd.ms-excel"),)))
    batch = await connector.poll("0")
    assert [r.application_id for r in batch.received] == ids
    assert batch.unreadable == [("A000004", "unreadable application: unknown procedure "
                                            "'り災証明書交付申請書'")]
    assert batch.cursor == "5"
    assert (await connector.poll(batch.cursor)).received == []


async def test_poller_announces_every_id_once_and_survives_an_outage(
        peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    ids = [submit_e_contract(peer) for _ in range(12)]  # poll_limit 10: two pages
    seen: list[str] = []
    cursors: list[str] = []
    stop = asyncio.Event()

    async def sink(batch: list[str], cursor: str) -> None:
        seen.extend(batch)
        cursors.append(cursor)
        if len(seen) == len(ids):
            stop.set()

    # The first poll fails on every attempt: nothing is skipped. The outage ends
    # once the peer has seen that poll's 3 attempts, not after a fixed time: a
    # timed outage let a fast machine reach the breaker's 10 failures and open
    # the circuit for 30 s (breaker_reset_s), past this test's wait.
    peer.faults.error_status = 500
    before = peer.faults.requests
    task = asyncio.create_task(poll_forever(connector, "0", sink, interval_s=0.05, stop=stop))
    for _ in range(200):
        if peer.faults.requests - before >= 3:
            break
        await asyncio.sleep(0.01)
    peer.faults.clear()
    assert seen == []  # nothing was announced while the peer failed
    last = await asyncio.wait_for(task, timeout=10)
    assert seen == ids
    assert cursors == ["10", "12"]
    assert last == "12"


async def test_unreadable_key_notice_becomes_a_sur1_problem(
        peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    junk = PeerAttachment(kind="電子保証に係る認証キーのお知らせ", filename="scan.jpg",
                          content=b"\xff\xd8\xff\xe0 not a pdf", content_type="image/jpeg")
    received = await connector.receive(submit_e_contract(peer, junk))
    assert received.surety_notices == ()
    assert [p.rule_id for p in received.problems] == ["SUR-1"]


async def test_missing_signatory_becomes_a_con1_problem(
        peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    app_id = peer.submit(case_no="R5-0003", procedure="電子契約利用申出書",
                         company="〇〇建設株式会社", answers={"工事名": "x"})
    received = await connector.receive(app_id)
    assert received.e_contract is None
    assert received.problems[0].rule_id == "CON-1"


async def test_correction_is_sent_once_even_when_repeated(
        peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    app_id = submit_e_contract(peer)
    command = CorrectionRequested(
        correction_id=uuid.uuid4(), application_id=app_id, comment_ja="PDFを再提出してください",
        violations=(RuleViolation(rule_id="SUR-1", message_ja="認証キーが読めません",
                                  message_en="The key cannot be read",
                                  next_step_ja="PDFを再提出", next_step_en="Resubmit the PDF"),))
    first = await connector.send_correction(command)
    again = await connector.send_correction(command)
    assert first.peer_reference == again.peer_reference == "C-000001"
    stored = peer.corrections[str(command.correction_id)]
    assert stored["items"][0]["rule"] == "SUR-1"
    assert len(peer.corrections) == 1


async def test_correction_for_an_unknown_application_is_permanent(
        connector: ApplicationConnector) -> None:
    command = CorrectionRequested(
        correction_id=uuid.uuid4(), application_id="A404",
        violations=(RuleViolation(rule_id="CON-1", message_ja="x", message_en="x"),))
    with pytest.raises(PermanentPeerError, match="HTTP 404"):
        await connector.send_correction(command)


async def test_peer_down_then_back_loses_nothing(peer: ApplicationPeer,
                                                 connector: ApplicationConnector) -> None:
    ids = [submit_e_contract(peer) for _ in range(2)]
    peer.stop()
    with pytest.raises(TransientPeerError, match="network") as caught:
        await connector.poll("0")
    assert caught.value.attempts == 3
    peer.start()
    assert [r.application_id for r in (await connector.poll("0")).received] == ids


@pytest.mark.parametrize("fault", ["slow", "garbage", "error"])
async def test_peer_misbehaving_is_retried_then_reported(
        peer: ApplicationPeer, connector: ApplicationConnector, fault: str) -> None:
    app_id = submit_e_contract(peer, key_notice())
    if fault == "slow":
        peer.faults.slow_s = 0.8
    elif fault == "garbage":
        peer.faults.garbage = True
    else:
        peer.faults.error_status = 502
    with pytest.raises(TransientPeerError) as caught:
        await connector.receive(app_id)
    assert peer.faults.requests == 3
    assert len(caught.value.history) == 3
    assert {"slow": "timeout", "garbage": "not JSON", "error": "HTTP 502"}[fault] in \
        caught.value.reason
    peer.faults.clear()
    assert (await connector.receive(app_id)).surety_notices[0].auth_key == KEY


async def test_maintenance_holds_without_retrying(peer: ApplicationPeer,
                                                  connector: ApplicationConnector) -> None:
    app_id = submit_e_contract(peer)
    peer.faults.maintenance_until = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(PeerInMaintenance):
        await connector.receive(app_id)
    assert peer.faults.requests == 1
    assert connector.guard.stats.held_for_maintenance == 1
    peer.faults.clear()
    assert (await connector.receive(app_id)).application_id == app_id


async def test_health(peer: ApplicationPeer, connector: ApplicationConnector) -> None:
    assert (await connector.health()).state is HealthState.UP
    peer.faults.garbage = True
    assert (await connector.health()).state is HealthState.UP  # /health is not faulted
    peer.stop()
    assert (await connector.health()).state is HealthState.DOWN
