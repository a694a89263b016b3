"""The CloudSign connector against the reference CloudSign server on loopback.

Send a contract set (``POST /documents/{id}``, status 1 checked), conclude it through
the (unsigned) webhook re-read through the API, keep the signed PDF and the
合意締結証明書 (CON-2, CON-4, CON-5, CON-6). Faults: peer down, slow past the timeout,
garbage, maintenance, expired token. A connector that sends with ``PUT`` (which only
updates a document's data) is refused by its own status check.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader
from reportlab.pdfgen import canvas

from connectors._shared import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors._shared.health import HealthState
from connectors._shared.loopback import LoopbackServer
from connectors.cloudsign import CloudSignConnector, CloudSignSettings, FileDocumentStore
from connectors.cloudsign.adapter import CloudSignAdapter
from connectors.cloudsign.inbound import WEBHOOK_PATH, webhook_router
from connectors.cloudsign.mapping import PeerDocument
from connectors.cloudsign.peer import CloudSignPeer
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
    ContractParticipant,
    ContractSendRequested,
)

CLIENT_ID = "test-cloudsign-client"
HOOK_TOKEN = "t" * 40


def contract_pdf(text: str = "請負契約書") -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(60, 780, text)
    pdf.save()
    return buffer.getvalue()


@pytest.fixture
def peer() -> Iterator[CloudSignPeer]:
    server = CloudSignPeer(client_id=CLIENT_ID)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hooks(peer: CloudSignPeer) -> Iterator[list[tuple[str, int]]]:
    """The gateway's webhook router, really served on loopback and set as the hook URL."""
    received: list[tuple[str, int]] = []

    async def on_document(document_id: str, status: int) -> bool:
        received.append((document_id, status))
        return True

    app = FastAPI()
    app.include_router(webhook_router(CloudSignSettings(webhook_token=HOOK_TOKEN),  # type: ignore[arg-type]
                                      on_document))
    with LoopbackServer(app) as receiver:
        peer.hook_url = f"{receiver.url}{WEBHOOK_PATH}/{HOOK_TOKEN}"
        yield received


def settings_for(peer: CloudSignPeer, tmp_path: Path, **overrides: object) -> CloudSignSettings:
    values: dict[str, object] = {
        "base_url": peer.url, "client_id": CLIENT_ID, "document_dir": tmp_path / "docs",
        "timeout_s": 0.5, "retry_attempts": 3, "retry_base_s": 0.01, "retry_max_s": 0.02,
        "breaker_failures": 20,
    }
    return CloudSignSettings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def connector(peer: CloudSignPeer, tmp_path: Path) -> AsyncIterator[CloudSignConnector]:
    conn = CloudSignConnector(settings_for(peer, tmp_path))
    yield conn
    await conn.aclose()


def send_command(conn: CloudSignConnector) -> ContractSendRequested:
    store = conn.store
    return ContractSendRequested(
        request_id=uuid.uuid4(), case_id="R5-0001", title="市道1号線舗装工事 請負契約書",
        message="ご確認をお願いします。",
        files=(store.put("請負契約書.pdf", contract_pdf()),
               store.put("請書.pdf", contract_pdf("請書"))),
        participants=(
            ContractParticipant(name="足利 一郎", email="ichiro@example.co.jp",
                                organization="〇〇建設株式会社"),
            ContractParticipant(name="担当 花子", email="hanako@example.co.jp"),
        ))


async def test_send_then_conclude_keeps_the_signed_set(
        peer: CloudSignPeer, connector: CloudSignConnector, hooks: list[str]) -> None:
    sent = await connector.send(send_command(connector))
    doc = peer.document(sent.document_id)
    assert doc["status"] == 1
    assert [p["email"] for p in doc["participants"][1:]] == ["ichiro@example.co.jp",
                                                             "hanako@example.co.jp"]
    assert [f["name"] for f in doc["files"]] == ["請負契約書.pdf", "請書.pdf"]
    assert await connector.conclude(sent.document_id, "R5-0001") is None  # in progress

    peer.agree_all(sent.document_id)
    assert hooks == [(sent.document_id, 2)]
    event = await connector.conclude(sent.document_id, "R5-0001", 2)
    assert isinstance(event, ContractConcluded)
    assert event.case_id == "R5-0001"
    assert len(event.signed_files) == 2
    signed = connector.store.get(event.signed_files[0])
    (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    trusted = ValidationContext(trust_roots=[signature.signer_cert])
    # CON-5: untouched since CloudSign sealed it
    assert (await async_validate_pdf_signature(signature, trusted)).intact
    certificate = PdfReader(io.BytesIO(connector.store.get(event.certificate)))
    text = certificate.pages[0].extract_text()
    assert "合意締結証明書" in text
    assert "ichiro@example.co.jp" in text
    assert event.signed_files[0].attachable  # CON-4: small enough to attach


async def test_a_repeated_webhook_gives_the_same_message(
        peer: CloudSignPeer, connector: CloudSignConnector,
        hooks: list[tuple[str, int]]) -> None:
    sent = await connector.send(send_command(connector))
    peer.agree_all(sent.document_id)
    peer.notify(sent.document_id)
    first, second = [await connector.conclude(d, "R5-0001", s) for d, s in hooks]
    assert first == second
    assert first is not None
    envelopes = [CloudSignConnector.envelope(e, case_id="R5-0001", procuring_entity="ashikaga")
                 for e in (first, second)]
    assert envelopes[0].message_id == envelopes[1].message_id


async def test_a_webhook_claiming_more_than_the_api_shows_is_not_believed(
        peer: CloudSignPeer, connector: CloudSignConnector,
        hooks: list[tuple[str, int]]) -> None:
    sent = await connector.send(send_command(connector))
    assert peer.notify(sent.document_id, status=2) == 200  # lies: it is still status 1
    # retried (webhooks are deduplicated per status: dropping it could lose the real one)
    with pytest.raises(TransientPeerError, match="still shows 1"):
        await connector.conclude(hooks[0][0], "R5-0001", hooks[0][1])
    assert await connector.conclude(sent.document_id, "R5-0001", 1) is None  # a bounce
    with pytest.raises(PermanentPeerError, match=r"HTTP 404 \(not_found\)"):
        await connector.conclude("not-a-hub-document", "R5-0001", 2)


async def test_rejection_is_declined_with_con2(
        peer: CloudSignPeer, connector: CloudSignConnector,
        hooks: list[tuple[str, int]]) -> None:
    sent = await connector.send(send_command(connector))
    peer.reject(sent.document_id)
    assert hooks == [(sent.document_id, 3)]
    event = await connector.conclude(sent.document_id, "R5-0001", 3)
    assert isinstance(event, ContractDeclined)
    assert event.violations[0].rule_id == "CON-2"


async def test_an_expired_token_is_renewed_by_the_retry(
        peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    sent = await connector.send(send_command(connector))
    peer.expire_tokens()
    assert await connector.conclude(sent.document_id, "R5-0001") is None
    assert connector.guard.stats.retries == 1


async def test_a_wrong_client_id_is_permanent(peer: CloudSignPeer, tmp_path: Path) -> None:
    conn = CloudSignConnector(settings_for(peer, tmp_path, client_id="nope"))
    try:
        with pytest.raises(PermanentPeerError, match="HUB_CLOUDSIGN_CLIENT_ID") as caught:
            await conn.send(send_command(conn))
        assert "nope" not in str(caught.value)
    finally:
        await conn.aclose()


async def test_a_disabled_client_is_permanent(peer: CloudSignPeer,
                                              connector: CloudSignConnector) -> None:
    peer.disable_client()
    with pytest.raises(PermanentPeerError, match="HUB_CLOUDSIGN_CLIENT_ID"):
        await connector.send(send_command(connector))
    assert peer.faults.requests == 1  # 403 forbidden: not retried


async def test_an_edited_source_file_is_refused_before_anything_is_sent(
        peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    command = send_command(connector)
    edited = Path(command.files[1].uri.removeprefix("file://"))
    edited.write_bytes(contract_pdf("改ざん"))  # noqa: ASYNC240 -- a tiny local file
    with pytest.raises(PermanentPeerError) as caught:
        await connector.send(command)
    assert caught.value.rule_ids == ("CON-5",)
    assert peer.faults.requests == 0


async def test_peer_down_during_send_then_back(
        peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    command = send_command(connector)
    peer.stop()
    with pytest.raises(TransientPeerError, match="network") as caught:
        await connector.send(command)
    assert caught.value.attempts == 3
    peer.start()
    sent = await connector.send(command)
    assert peer.document(sent.document_id)["status"] == 1


@pytest.mark.parametrize("fault", ["slow", "garbage", "error"])
async def test_peer_misbehaving_is_retried_then_reported(
        peer: CloudSignPeer, connector: CloudSignConnector, fault: str) -> None:
    sent = await connector.send(send_command(connector))
    peer.agree_all(sent.document_id, notify=False)
    before = peer.faults.requests
    if fault == "slow":
        peer.faults.slow_s = 0.8
    elif fault == "garbage":
        peer.faults.garbage = True
    else:
        peer.faults.error_status = 500
    with pytest.raises(TransientPeerError) as caught:
        await connector.conclude(sent.document_id, "R5-0001")
    assert peer.faults.requests - before == 3
    assert len(caught.value.history) == 3
    peer.faults.clear()
    assert isinstance(await connector.conclude(sent.document_id, "R5-0001"),
                      ContractConcluded)


async def test_maintenance_holds_the_send(peer: CloudSignPeer,
                                          connector: CloudSignConnector) -> None:
    command = send_command(connector)
    peer.faults.maintenance_until = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(PeerInMaintenance):
        await connector.send(command)
    assert peer.faults.requests == 1
    peer.faults.clear()
    assert (await connector.send(command)).request_id == command.request_id


async def test_health(peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    assert (await connector.health()).state is HealthState.UP
    peer.stop()
    assert (await connector.health()).state is HealthState.DOWN


def test_store_default_lives_under_the_configured_directory(peer: CloudSignPeer,
                                                            tmp_path: Path) -> None:
    conn = CloudSignConnector(settings_for(peer, tmp_path))
    assert isinstance(conn.store, FileDocumentStore)
    assert conn.store.root == (tmp_path / "docs").resolve()


class PutSendingAdapter(CloudSignAdapter):
    """The old mistake: ``PUT /documents/{id}``, which only updates a document's data."""

    async def send(self, document_id: str) -> PeerDocument:
        return await self._document("PUT", f"/documents/{document_id}", "send")


async def test_a_connector_sending_with_put_fails_against_the_spec_following_peer(
        peer: CloudSignPeer, tmp_path: Path) -> None:
    settings = settings_for(peer, tmp_path)
    conn = CloudSignConnector(settings, adapter=PutSendingAdapter(settings))
    try:
        with pytest.raises(PermanentPeerError, match=r"status 0 \(DRAFT\).*not 1"):
            await conn.send(send_command(conn))
        (doc,) = [peer.document(d) for d in peer.document_ids()]
        assert doc["status"] == 0  # still 下書き: nobody was asked to agree
    finally:
        await conn.aclose()


async def test_sending_twice_is_a_reminder_not_an_error(
        peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    sent = await connector.send(send_command(connector))
    again = await connector.adapter.send(sent.document_id)
    assert again.status.value == 1


class Crash(BaseException):
    """The process dies here (not an Exception: no retry or handler catches it)."""


async def test_a_send_redelivered_after_a_crash_before_the_journal_knew_the_document(
        peer: CloudSignPeer, tmp_path: Path) -> None:
    """CloudSign created the document, the process died before the journal recorded its
    id: the next process finds it by the request key in its note and sends that one."""
    first = CloudSignConnector(settings_for(peer, tmp_path))
    command = send_command(first)

    def crash(*_: object) -> None:
        raise Crash

    first.journal.created = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await first.send(command)
    await first.aclose()
    (made,) = peer.document_ids()
    assert peer.document(made)["status"] == 0  # created, nothing else

    again = CloudSignConnector(settings_for(peer, tmp_path))  # the restarted process
    try:
        sent = await again.send(command)
        assert peer.document_ids() == [made]
        assert sent.document_id == made
        doc = peer.document(made)
        assert doc["status"] == 1
        assert [f["name"] for f in doc["files"]] == ["請負契約書.pdf", "請書.pdf"]
        assert [p["email"] for p in doc["participants"][1:]] == ["ichiro@example.co.jp",
                                                                 "hanako@example.co.jp"]
        # and once more, as a later redelivery: the journal now names the document
        assert (await again.send(command)).document_id == made
        assert peer.document_ids() == [made]
    finally:
        await again.aclose()


async def test_a_send_redelivered_after_a_crash_mid_upload_completes_the_document(
        peer: CloudSignPeer, tmp_path: Path) -> None:
    """The process died after the first file was uploaded: the next delivery uploads only
    the second, adds the parties once and sends the same document."""
    first = CloudSignConnector(settings_for(peer, tmp_path))
    command = send_command(first)
    upload = first.adapter.upload_file
    calls = 0

    async def upload_then_crash(document_id: str, name: str, content: bytes) -> PeerDocument:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash
        return await upload(document_id, name, content)

    first.adapter.upload_file = upload_then_crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await first.send(command)
    await first.aclose()
    (made,) = peer.document_ids()
    assert [f["name"] for f in peer.document(made)["files"]] == ["請負契約書.pdf"]

    again = CloudSignConnector(settings_for(peer, tmp_path))
    try:
        sent = await again.send(command)
    finally:
        await again.aclose()
    assert sent.document_id == made
    assert peer.document_ids() == [made]
    doc = peer.document(made)
    assert doc["status"] == 1
    assert [f["name"] for f in doc["files"]] == ["請負契約書.pdf", "請書.pdf"]
    assert [p["email"] for p in doc["participants"][1:]] == ["ichiro@example.co.jp",
                                                             "hanako@example.co.jp"]


async def test_a_send_whose_document_has_ended_is_refused_for_good(
        peer: CloudSignPeer, connector: CloudSignConnector) -> None:
    command = send_command(connector)
    sent = await connector.send(command)
    peer.reject(sent.document_id, notify=False)
    with pytest.raises(PermanentPeerError, match="not a draft"):
        await connector.send(command)
    assert peer.document_ids() == [sent.document_id]
