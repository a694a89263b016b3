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


async def test_the_download_page_in_a_browser_and_its_refusal_pages(
        served: tuple[str, SqlDocumentStore, LinkSigner]) -> None:
    """A browser opening the mailed link gets the CON-4 download page; its button gives
    the very bytes stored; a tampered or expired link shows a page naming CON-4."""
    from playwright.async_api import async_playwright, expect

    from tests.integration.test_contract_review_pages import accessible

    _, store, links = served
    pdf = make_pdf(30_000, "browser download")
    doc = store.put(pdf, filename="R8-0123.pdf")
    url = links.link(doc.key, doc.filename, datetime.now(UTC) + timedelta(days=10))
    async with async_playwright() as play:
        browser = await play.chromium.launch(executable_path="/usr/bin/chromium",
                                             headless=True)
        try:
            page = await browser.new_page(accept_downloads=True, locale="ja-JP",
                                          bypass_csp=True)  # for axe-core's script
            shown = await page.goto(url)
            assert shown is not None
            assert shown.status == 200
            await expect(page.locator("h1")).to_contain_text("締結済み契約書のダウンロード")
            await expect(page.locator("#filename")).to_have_text("R8-0123.pdf")
            await expect(page.locator("main")).to_contain_text(doc.key)  # its SHA-256
            await accessible(page, "download")
            async with page.expect_download() as started:
                await page.locator("#download").click()
            saved = await (await started.value).path()
            assert saved.read_bytes() == pdf
            tampered = await page.goto(url.replace("sig=", "sig=0"))
            assert tampered is not None
            assert tampered.status == 403
            await expect(page.locator(".rule")).to_have_text("CON-4 / HTTP 403")
            old = links.link(doc.key, doc.filename, datetime.now(UTC) - timedelta(seconds=1))
            expired = await page.goto(old)
            assert expired is not None
            assert expired.status == 410
            await expect(page.locator("h1")).to_contain_text("有効期限が切れています")
            await expect(page.locator("[role=alert]")).to_contain_text("expired")
            await accessible(page, "download expired")
        finally:
            await browser.close()
    # API clients keep getting the bytes and JSON refusals
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == pdf
        refused = await client.get(url.replace("sig=", "sig=0"))
    assert refused.json()["detail"]["violations"][0]["rule_id"] == "CON-4"
