"""The mail connector against a real SMTP server (aiosmtpd on loopback), faults included.

Peer down, peer slow past the timeout, peer answering garbage, peer inside a
maintenance window: each shows the retries and the error class the hub acts on
(transient → retry then dead-letter; permanent → rejection; maintenance → held).
"""

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors._shared import (
    HealthState,
    PeerInMaintenance,
    PermanentPeerError,
    TransientPeerError,
)
from connectors.mail import DirectoryDocumentStore, MailConnector, MailSettings
from connectors.mail.effects import effects
from connectors.mail.peer import Behaviour, SmtpPeer, free_port
from schemas.cloudsign import DocumentRef
from schemas.envelope import JST, Envelope, new_envelope
from schemas.mail import MailFailed, MailKind, MailRequested, MailSent
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec

pytestmark = pytest.mark.smtp

VALUES = {
    "system_name": "埼玉県電子入札共同システム",
    "procuring_entity_name": "埼玉県",
    "company_name": "○○建設株式会社",
    "company_id": "1234567890123456",
    "contact_name": "埼玉 太郎",
    "contact_address": "埼玉県さいたま市○○1丁目23番地",
    "case_name": "県道○○線舗装工事",
}
KEY = b"test-link-signing-key-0123456789"


@pytest.fixture
def peer() -> Iterator[SmtpPeer]:
    with SmtpPeer() as running:
        yield running


def settings_for(port: int, tmp_path: Path, **extra: object) -> MailSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1", "port": port, "timeout_s": 2.0, "retry_attempts": 3,
        "retry_base_s": 0.01, "retry_max_s": 0.05, "from_address": "no-reply@city.example",
        "documents_dir": tmp_path, "documents_base_url": "https://hub.example/documents",
    }
    return MailSettings(**{**base, **extra})  # type: ignore[arg-type]


def connector_for(port: int, tmp_path: Path, **extra: object) -> MailConnector:
    settings = settings_for(port, tmp_path, **extra)
    store = DirectoryDocumentStore(tmp_path, settings.documents_base_url, KEY)
    return MailConnector(settings, documents=store)


def registration(mail_id: uuid.UUID | None = None, **values: str) -> MailRequested:
    return MailRequested(mail_id=mail_id or uuid.uuid4(), kind=MailKind.REGISTRATION,
                         to=("taro@kensetsu.example",), values={**VALUES, **values})


async def test_registration_mail_arrives_reg10(peer: SmtpPeer, tmp_path: Path) -> None:
    mail = registration()
    sent = await connector_for(peer.port, tmp_path).send(mail)
    [received] = peer.wait_for(1)
    assert received.rcpt_tos == ("taro@kensetsu.example",)
    assert received.mail_from == "no-reply@city.example"
    message = received.message
    assert message["Subject"] == "利用者登録のお知らせ"
    assert received.message_id == sent.smtp_message_id == f"<{mail.mail_id}@city.example>"
    body = message.get_body().get_content()  # type: ignore[union-attr]
    assert "連絡先氏名 : 埼玉 太郎" in body
    assert "企業ID : 1234567890123456" in body
    assert "このアドレスには返信しないでください。" in body


async def test_header_injection_never_reaches_the_relay(peer: SmtpPeer, tmp_path: Path) -> None:
    hostile = registration(contact_name="太郎\r\nBcc: victim@evil.example")
    with pytest.raises(PermanentPeerError) as info:
        await connector_for(peer.port, tmp_path).send(hostile)
    assert info.value.rule_ids == ("REG-10",)
    assert "改行" in info.value.violations[0].message_ja
    assert peer.received == []


async def test_small_pdf_is_attached_large_one_linked_con4(peer: SmtpPeer,
                                                          tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "契約書.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * 5_999_990)
    (tmp_path / "big.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * 5_999_991)  # 6,000,000 bytes
    connector = connector_for(peer.port, tmp_path)
    for ref in ("small/契約書.pdf", "big.pdf"):
        await connector.send(MailRequested(
            mail_id=uuid.uuid4(), kind=MailKind.CONTRACT_CONCLUDED, to=("a@b.example",),
            values=VALUES, attachment_ref=ref))
    small, big = peer.wait_for(2)
    # The contract's DocumentRef decides the same way at the same sizes (one CON-4 limit).
    ref = DocumentRef(uri="file:///x", filename="x.pdf", size_bytes=5_999_999, sha256="a" * 64)
    assert ref.attachable
    assert not ref.model_copy(update={"size_bytes": 6_000_000}).attachable
    [attached] = small.message.iter_attachments()  # type: ignore[attr-defined]
    assert attached.get_filename() == "契約書.pdf"
    assert len(attached.get_content()) == 5_999_999
    assert not list(big.message.iter_attachments())  # type: ignore[attr-defined]
    body = big.message.get_body().get_content()  # type: ignore[union-attr]
    url = next(line for line in body.splitlines() if line.startswith("https://"))
    query = parse_qs(urlsplit(url).query)
    expires = int(query["expires"][0])
    store = DirectoryDocumentStore(tmp_path, "https://hub.example/documents", KEY)
    now = datetime.now(UTC)
    assert store.verify_link("big.pdf", expires, query["sig"][0], now)
    assert not store.verify_link("big.pdf", expires, query["sig"][0], now + timedelta(days=10))
    assert not store.verify_link("small/契約書.pdf", expires, query["sig"][0], now)
    valid_until = datetime.fromtimestamp(expires, JST)
    assert f"{valid_until.month}月{valid_until.day}日" in body


async def test_missing_document_is_refused_con4(peer: SmtpPeer, tmp_path: Path) -> None:
    for ref in ("nothing.pdf", "../etc/passwd"):
        with pytest.raises(PermanentPeerError) as info:
            await connector_for(peer.port, tmp_path).send(MailRequested(
                mail_id=uuid.uuid4(), kind=MailKind.CONTRACT_CONCLUDED, to=("a@b.example",),
                values=VALUES, attachment_ref=ref))
        assert info.value.rule_ids == ("CON-4",)


async def test_outage_is_retried_and_nothing_lost_once_back(tmp_path: Path) -> None:
    port = free_port()
    connector = connector_for(port, tmp_path)
    mail = registration()
    with pytest.raises(TransientPeerError) as info:
        await connector.send(mail)
    assert info.value.attempts == 3
    assert all("Connection refused" in h or "ConnectionRefused" in h for h in info.value.history)
    with SmtpPeer(port=port) as back:
        sent = await connector.send(mail)
        [received] = back.wait_for(1)
    assert received.message_id == sent.smtp_message_id


async def test_deferral_451_is_retried_refusal_550_is_permanent(peer: SmtpPeer,
                                                                tmp_path: Path) -> None:
    connector = connector_for(peer.port, tmp_path)
    peer.behaviour = Behaviour.DEFER
    with pytest.raises(TransientPeerError) as deferred:
        await connector.send(registration())
    assert deferred.value.attempts == 3
    assert "451" in deferred.value.reason
    peer.behaviour = Behaviour.REFUSE
    with pytest.raises(PermanentPeerError) as refused:
        await connector.send(registration())
    assert refused.value.rule_ids == ("NTF-1",)
    assert connector.guard.stats.permanent_failures == 1
    peer.behaviour = Behaviour.ACCEPT
    peer.unknown_recipients.add("taro@kensetsu.example")
    with pytest.raises(PermanentPeerError, match="recipients refused"):
        await connector.send(registration())
    assert peer.received == []


async def test_slow_peer_past_timeout_is_transient(peer: SmtpPeer, tmp_path: Path) -> None:
    peer.behaviour, peer.delay_s = Behaviour.SLOW, 1.5
    connector = connector_for(peer.port, tmp_path, timeout_s=0.3, retry_attempts=2)
    with pytest.raises(TransientPeerError) as info:
        await connector.send(registration())
    assert info.value.attempts == 2
    assert "timeout" in info.value.reason.lower() or "timed out" in info.value.reason


@pytest.fixture
def garbage_port() -> Iterator[int]:
    """A TCP server on loopback that answers every connection with non-SMTP bytes."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff garbage\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


async def test_garbage_answer_is_transient(garbage_port: int, tmp_path: Path) -> None:
    connector = connector_for(garbage_port, tmp_path)
    with pytest.raises(TransientPeerError) as info:
        await connector.send(registration())
    assert info.value.attempts == 3
    health = await connector.health()
    assert health.state is HealthState.DOWN


async def test_maintenance_window_holds_the_mail(peer: SmtpPeer, tmp_path: Path) -> None:
    now = datetime.now(JST)
    window = f"fixed {(now - timedelta(minutes=5)).isoformat()} " \
             f"{(now + timedelta(minutes=30)).isoformat()}"
    connector = connector_for(peer.port, tmp_path, maintenance=(window,))
    with pytest.raises(PeerInMaintenance) as info:
        await connector.send(registration())
    assert now + timedelta(minutes=29) < info.value.retry_at <= now + timedelta(minutes=30)
    assert peer.received == []
    assert (await connector.health()).state is HealthState.MAINTENANCE


async def test_health_up_and_down(peer: SmtpPeer, tmp_path: Path) -> None:
    health = await connector_for(peer.port, tmp_path).health()
    assert health.ok
    assert health.detail.startswith("250")
    down = await connector_for(free_port(), tmp_path).health()
    assert down.state is HealthState.DOWN


async def test_a_repeat_of_one_mail_id_is_recognisable(peer: SmtpPeer, tmp_path: Path) -> None:
    connector = connector_for(peer.port, tmp_path)
    mail = registration()
    first = await connector.send(mail)
    second = await connector.send(mail)
    one, two = peer.wait_for(2)
    assert first.smtp_message_id == second.smtp_message_id == one.message_id == two.message_id


class RecordingEmitter:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, object]] = []

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        self.emitted.append((topic.name, payload))
        return cause.caused(payload, producer="test")


def envelope_of(mail: MailRequested) -> Envelope[Any]:
    return new_envelope(mail, correlation_id=str(mail.mail_id), procuring_entity="saitama-pref",
                        producer="test")


async def test_effect_emits_sent_or_failed_and_raises_outages(peer: SmtpPeer,
                                                              tmp_path: Path) -> None:
    [send] = effects(connector_for(peer.port, tmp_path)).values()
    ctx = RecordingEmitter()
    await send(ctx, envelope_of(registration()))
    await send(ctx, envelope_of(registration(company_name="株式会社\nBcc: x@evil.example")))
    (topic_ok, sent), (topic_failed, failed) = ctx.emitted
    assert topic_ok == topic_failed == Topics.MAIL_EVENTS.name
    assert isinstance(sent, MailSent)
    assert isinstance(failed, MailFailed)
    assert failed.reason.startswith("REG-10: ")
    assert len(peer.wait_for(1)) == 1
    [down] = effects(connector_for(free_port(), tmp_path, retry_attempts=1)).values()
    with pytest.raises(TransientPeerError):
        await down(ctx, envelope_of(registration()))
    assert len(ctx.emitted) == 2
