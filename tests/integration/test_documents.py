"""The shared document store (hub/documents) and the CON-4 download route over real HTTP.

The store keeps bytes by their SHA-256 in the database every hub process shares; the
mail connector attaches from it, or links to the hub's own download route when the
document is over the limit, and the route serves a link that is valid, refusing a
tampered one (403) and an expired one (410) with CON-4 in Japanese and English.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from connectors.mail import MailConnector
from connectors.mail.peer import SmtpPeer
from connectors.mail.settings import MailSettings
from hub.documents import DocumentNotFoundError, LinkSigner, SqlDocumentStore, content_key
from hub.documents.mail import MailDocuments
from hub.documents.routes import download_router
from hub.runtime import _QuietServer
from pipelines.contract.mails import MAIL_NAMESPACE
from schemas.mail import ATTACHMENT_LIMIT_BYTES, MailKind, MailRequested
from tests.card.pdfs import make_pdf
from tests.support.hubproc import free_port

pytestmark = [pytest.mark.postgres]

KEY = b"a-test-link-key-of-32-bytes-----"


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[str, SqlDocumentStore, LinkSigner]]:
    """The download route on a real HTTP server on loopback."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    store, links = SqlDocumentStore(engine), LinkSigner(base, KEY)
    app = FastAPI()
    app.include_router(download_router(store, links))
    server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                         lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the HTTP server did not start"
        time.sleep(0.05)
    yield base, store, links
    server.should_exit = True
    thread.join(timeout=10)


def test_put_get_stat_delete_by_content_key(engine: Engine) -> None:
    store = SqlDocumentStore(engine)
    pdf = make_pdf(5_000, "store")
    doc = store.put(pdf, filename="契約書.pdf")
    assert doc.key == content_key(pdf)
    assert store.put(pdf, filename="again.pdf").filename == "契約書.pdf"  # kept once
    assert store.get(doc.key) == pdf
    got = store.stat(doc.key)
    assert (got.filename, got.content_type, got.size) == ("契約書.pdf", "application/pdf",
                                                          len(pdf))
    store.delete(doc.key)
    for bad in (doc.key, "../etc/passwd", "x" * 64):
        with pytest.raises(DocumentNotFoundError):
            store.get(bad)
        with pytest.raises(DocumentNotFoundError):
            store.stat(bad)


def _violation(reply: httpx.Response) -> dict[str, str]:
    (violation,) = reply.json()["detail"]["violations"]
    assert violation["rule_id"] == "CON-4"
    assert violation["message_ja"]
    assert violation["message_en"]
    assert violation["next_step_ja"]
    assert violation["next_step_en"]
    return dict(violation)


def test_a_signed_link_serves_the_pdf_and_a_tampered_or_expired_one_is_refused(
        served: tuple[str, SqlDocumentStore, LinkSigner]) -> None:
    base, store, links = served
    pdf = make_pdf(20_000, "download")
    doc = store.put(pdf, filename="R8-0042.pdf")
    url = links.link(doc.key, doc.filename, datetime.now(UTC) + timedelta(days=10))
    assert url.startswith(f"{base}/documents/{doc.key}/R8-0042.pdf?")
    reply = httpx.get(url)
    assert reply.status_code == 200
    assert reply.content == pdf
    assert reply.headers["content-type"] == "application/pdf"

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    later = {**query, "expires": str(int(query["expires"]) + 86_400)}  # a longer life
    other = store.put(make_pdf(3_000, "other"), filename="other.pdf")
    forged = [
        f"{base}{parts.path}?{urlencode(later)}",
        f"{base}{parts.path}?{urlencode({**query, 'sig': '0' * 64})}",
        f"{base}/documents/{other.key}/other.pdf?{parts.query}",  # another document
        f"{base}{parts.path}",  # no signature at all
    ]
    for bad in forged:
        refused = httpx.get(bad)
        assert refused.status_code == 403, bad
        assert "正しくありません" in _violation(refused)["message_ja"]

    expired = links.link(doc.key, doc.filename, datetime.now(UTC) - timedelta(seconds=1))
    gone = httpx.get(expired)
    assert gone.status_code == 410
    assert "有効期限" in _violation(gone)["message_ja"]
    assert "expired" in _violation(gone)["message_en"]

    store.delete(doc.key)
    assert httpx.get(url).status_code == 404


async def test_the_mail_links_a_large_pdf_to_the_hubs_own_route_valid_10_days(
        served: tuple[str, SqlDocumentStore, LinkSigner], tmp_path: object) -> None:
    base, store, links = served
    pdf = make_pdf(ATTACHMENT_LIMIT_BYTES + 10_000, "large")  # the one CON-4 limit
    doc = store.put(pdf, filename="R8-0099.pdf")
    with SmtpPeer() as peer:
        settings = MailSettings(port=peer.port, timeout_s=5.0)
        connector = MailConnector(settings, documents=MailDocuments(store, links))
        await connector.send(MailRequested(
            mail_id=MAIL_NAMESPACE, kind=MailKind.CONTRACT_CONCLUDED,
            to=("boss@demo.co.jp",), attachment_ref=f"contracts/{doc.key}/{doc.filename}",
            values={"company_name": "デモ建設株式会社", "procuring_entity_name": "足利市",
                    "case_name": "市道改良工事"}))
        (mail,) = peer.wait_for(1)
    body = mail.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    (url,) = [w for w in text.split() if w.startswith(f"{base}/documents/")]
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    days = (datetime.fromtimestamp(expires, UTC) - datetime.now(UTC)) / timedelta(days=1)
    assert 9.99 < days <= 10  # CON-4
    async with httpx.AsyncClient() as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    assert reply.content == pdf
    # under the limit it is attached, read from the same store
    small = make_pdf(2_000, "small")
    sdoc = store.put(small, filename="R8-0100.pdf")
    with SmtpPeer() as peer:
        settings = MailSettings(port=peer.port, timeout_s=5.0)
        connector = MailConnector(settings, documents=MailDocuments(store, links))
        await connector.send(MailRequested(
            mail_id=MAIL_NAMESPACE, kind=MailKind.CONTRACT_CONCLUDED,
            to=("boss@demo.co.jp",), attachment_ref=f"contracts/{sdoc.key}/{sdoc.filename}",
            values={"company_name": "デモ建設株式会社", "procuring_entity_name": "足利市",
                    "case_name": "市道改良工事"}))
        (mail,) = peer.wait_for(1)
    (part,) = list(mail.message.iter_attachments())
    assert part.get_filename() == "R8-0100.pdf"
    assert part.get_content() == small
