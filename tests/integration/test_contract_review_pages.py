"""The contractor's review pages (CON-3) in a real browser: Playwright driving Debian's
chromium against the review router served over HTTP (uvicorn), with the process manager
behind it through the real Processor on PostgreSQL, and the review mail and the one-time
code travelling through the mail connector to a real SMTP server (aiosmtpd).

The contractor opens the link from the mail, sees the contract set's first page drawn,
asks for a code, types the code from the mail (keyboard only) and agrees; the case moves
on and the used link then shows its own page. An expired link shows the expiry page and
its re-send form brings a new link. Forms without the page's CSRF field are refused with
EDGE-4 and change nothing. axe-core (npm, deploy/axe, installed by
deploy/setup.d/30-browser.sh) finds no serious or critical violation on any of the pages.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy.engine import Engine

from connectors.mail import DirectoryDocumentStore, MailConnector, MailSettings
from connectors.mail.peer import SmtpPeer
from hub.contract.archive_api import archive_router
from hub.contract.review_api import review_router
from hub.contract.wiring import consumers
from hub.db import OutboxRecord
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.audit import AuditRecord
from pipelines.contract.state import ContractPolicy
from schemas.contract import ContractStatus
from schemas.topics import Topics
from tests.card.server import LoopbackServer
from tests.integration.test_contract_review_api import (
    BOSS,
    CLERK,
    CODE,
    HTML,
    Site,
    csrf,
    in_review,
)
from tests.support.processing import Clock
from tests.support.staff import AUTH, every_entity

pytestmark = [pytest.mark.postgres, pytest.mark.smtp]

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
AXE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "axe"
AXE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
HAVE_AXE = AXE.exists()
AXE_DECLARED = (AXE_DIR / "package.json").exists()


async def accessible(page: Page, name: str) -> None:
    """axe-core's violations of impact serious or critical on ``page``: none. With
    ``HUB_CONTRACTOR_SCREENSHOTS`` set, the page at 1366×768 is saved there as
    ``<name>.png`` (the repository's are in docs/contractor-pages/)."""
    shots = os.environ.get("HUB_CONTRACTOR_SCREENSHOTS")
    if shots:
        await page.screenshot(path=str(Path(shots) / f"{name.replace(' ', '-')}.png"))
    if not HAVE_AXE:
        if not AXE_DECLARED:  # the rest of the test still runs
            warnings.warn("axe-core is not declared in this tree (deploy/axe/package.json): "
                          f"no accessibility check of the {name} page", stacklevel=2)
            return
        pytest.fail(f"axe-core is missing ({AXE}): run `bash deploy/setup.d/30-browser.sh`")
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, (name, serious)


POLICY = ContractPolicy(review_link_ttl=timedelta(days=7),
                        review_base_url="https://hub.example/contract/review")

class PageSite(Site):
    url: str = ""


@pytest.fixture
def site(pg_engine: Engine, tmp_path: Any) -> Iterator[PageSite]:
    policy = POLICY
    clock = Clock()
    (spec,) = consumers(policy=policy)
    proc = Processor(spec, pg_engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=clock, rng=random.Random(8))
    app = FastAPI()
    app.include_router(review_router(pg_engine, clock, policy=policy))
    app.include_router(archive_router(pg_engine, (), clock, identity=every_entity(),
                                      policy=policy))
    with SmtpPeer() as smtp, TestClient(app, headers=AUTH) as http, \
            LoopbackServer(app) as server:
        settings = MailSettings(host="127.0.0.1", port=smtp.port, timeout_s=5,
                                from_address="no-reply@city.example", documents_dir=tmp_path,
                                documents_base_url="https://hub.example/documents")
        mail = MailConnector(settings, documents=DirectoryDocumentStore(
            tmp_path, settings.documents_base_url, b"test-link-signing-key-0123456789"))
        found = PageSite(http, proc, pg_engine, clock, smtp, mail)
        found.url = server.url
        yield found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail("chromium is missing: deploy/setup.d/30-browser.sh installs it")
    async with async_playwright() as play:
        found = await play.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield found
        await found.close()


async def _open(browser: Browser, url: str) -> tuple[Page, int]:
    # bypass_csp: the pages allow no script, and axe-core is one
    page = await browser.new_page(locale="ja-JP", viewport={"width": 1366, "height": 768},
                                  bypass_csp=True)
    answer = await page.goto(url)
    assert answer is not None
    return page, answer.status


async def _first_page_drawn(page: Page) -> None:
    image = page.locator("#preview img").first
    await expect(image).to_be_visible()
    await expect(image).to_have_attribute("alt", "契約書類 1ページ目 / Contract set, page 1")
    drawn = await image.evaluate("img => img.complete && img.naturalWidth")
    assert drawn == 900  # the PNG the hub drew, not a broken image


async def test_contractor_sees_the_pdf_and_agrees_with_the_mailed_code(
        site: PageSite, browser: Browser) -> None:
    token = await in_review(site)  # the link as it arrived in the contractor's mailbox
    page, status = await _open(browser, f"{site.url}/contract/review/{token}")
    assert status == 200
    await expect(page.locator("h1")).to_contain_text("電子契約の確認")
    await expect(page.locator("#case-id")).to_have_text("R8-0300")
    await _first_page_drawn(page)
    await accessible(page, "review")
    href = await page.locator("#open-pdf").get_attribute("href")
    pdf = await page.request.get(f"{site.url}{href}")
    assert pdf.headers["content-type"] == "application/pdf"
    # keyboard only: choose the 権限者's address, tab to the button, Enter
    await page.get_by_label(BOSS.email).focus()
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "send-code"
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await expect(page.locator("#code-sent")).to_contain_text(BOSS.email)
    await accessible(page, "code")
    (mailed,) = await site.post_mails()
    match = CODE.search(mailed)
    assert match is not None, mailed
    await page.locator("#agree-code").focus()
    await page.keyboard.type(match.group(1))
    async with page.expect_navigation():
        await page.keyboard.press("Enter")  # submits the agree form
    await expect(page.locator("#done")).to_contain_text("同意を受け付けました")
    await expect(page.locator("#next-link")).to_have_attribute("href", "/contractor/jobs")
    await accessible(page, "done")
    await site.relay()
    state = site.state()
    assert (state.status, state.contractor_agreed_by) == (ContractStatus.CONTRACTOR_AGREED,
                                                          BOSS.email)
    # the link is spent: its page says so, with the rule and what to do
    again, status = await _open(browser, f"{site.url}/contract/review/{token}")
    assert status == 410
    await expect(again.locator("h1")).to_contain_text("このリンクは使用済みです")
    await expect(again.locator(".rule")).to_have_text("CON-3 / HTTP 410")
    assert await again.locator("form").count() == 0
    await accessible(again, "used")


async def test_a_wrong_code_keeps_the_contractor_on_the_code_page(
        site: PageSite, browser: Browser) -> None:
    token = await in_review(site)
    page, _ = await _open(browser, f"{site.url}/contract/review/{token}")
    await page.get_by_label(CLERK.email).check()
    await page.locator("#send-code").click()
    (mailed,) = await site.post_mails()
    match = CODE.search(mailed)
    assert match is not None
    wrong = f"{(int(match.group(1)) + 1) % 1_000_000:06d}"
    await page.locator("#reject-code").fill(wrong)
    await page.get_by_label("差戻しの理由").fill("工期が違います")
    await page.locator("#reject").click()
    await expect(page.locator("#code-error")).to_contain_text("確認コードが正しくありません")
    await expect(page.locator("#code-error")).to_contain_text("CON-3 / HTTP 403")
    await accessible(page, "wrong code")
    await page.locator("#reject-code").fill(match.group(1))
    await page.get_by_label("差戻しの理由").fill("工期が違います")
    await page.locator("#reject").click()
    await expect(page.locator("#done")).to_contain_text("差戻しを受け付けました")
    await site.relay()
    assert site.state().status is ContractStatus.REJECTED


async def test_expired_link_shows_the_expiry_page_and_sends_a_new_link(
        site: PageSite, browser: Browser) -> None:
    token = await in_review(site)
    site.clock.now += timedelta(days=8)
    page, status = await _open(browser, f"{site.url}/contract/review/{token}")
    assert status == 410
    await expect(page.locator("h1")).to_contain_text("リンクの有効期限が切れています")
    await expect(page.locator("[role=alert]")).to_contain_text("expired")
    await expect(page.locator(".rule")).to_have_text("CON-3 / HTTP 410")
    await accessible(page, "expired")
    await page.get_by_label("確認依頼メールを受け取ったメールアドレス").fill(CLERK.email)
    await page.locator("#resend").click()
    await expect(page.locator("#done")).to_contain_text("新しい確認用リンク")
    fresh = await site.link()
    assert fresh != token
    page, status = await _open(browser, f"{site.url}/contract/review/{fresh}")
    assert status == 200
    await _first_page_drawn(page)


async def test_unknown_link_page_names_the_rule_and_offers_no_form(
        site: PageSite, browser: Browser) -> None:
    await in_review(site)
    page, status = await _open(browser, f"{site.url}/contract/review/not-a-link")
    assert status == 404
    await expect(page.locator("h1")).to_contain_text("このリンクは無効です")
    await expect(page.locator("h1")).to_contain_text("This link is not valid")
    await accessible(page, "invalid")
    assert await page.locator("form").count() == 0


def _mail_requests(engine: Engine) -> int:
    table = OutboxRecord.__table__
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.topic == Topics.MAIL_REQUESTS.name)).scalar_one())


async def test_forms_without_the_pages_csrf_field_change_nothing(site: PageSite) -> None:
    token = await in_review(site)
    shown = site.http.get(f"/contract/review/{token}", headers=HTML)
    assert shown.headers["content-security-policy"].startswith("default-src 'none'")
    assert "script" not in shown.text.lower()
    field = csrf(shown.text)
    before = _mail_requests(site.engine)
    code = f"/contract/review/{token}/form/code"
    for data, headers in (({"by": BOSS.email}, HTML),  # no field
                          ({"by": BOSS.email, "csrf": "0" * 64}, HTML),  # a made-up one
                          ({"by": BOSS.email, "csrf": field},  # sent from another site
                           {**HTML, "sec-fetch-site": "cross-site"})):
        refused = site.http.post(code, data=data, headers=headers)
        assert refused.status_code == 403
        assert "EDGE-4 / HTTP 403" in refused.text
    other = TestClient(site.http.app)  # another browser: its cookie is not this one's
    assert other.post(code, data={"by": BOSS.email, "csrf": field},
                      headers=HTML).status_code == 403
    assert _mail_requests(site.engine) == before
    sent = site.http.post(code, data={"by": BOSS.email, "csrf": field}, headers=HTML)
    assert sent.status_code == 202
    assert _mail_requests(site.engine) == before + 1
    png = site.http.get(f"/contract/review/{token}/preview/1.png")
    assert (png.status_code, png.headers["content-type"]) == (200, "image/png")
    assert site.http.get(f"/contract/review/{token}/preview/99.png").status_code == 404
    with site.engine.connect() as conn:
        actions = [r.action.removeprefix("review.") for r in conn.execute(
            sa.select(AuditRecord.__table__))  # type: ignore[attr-defined]
            if r.action.startswith("review.")]
    assert actions.count("code") == 5  # every refused form is audited too
    assert "preview" in actions


def test_previews_come_from_poppler_and_a_bad_pdf_gets_none() -> None:
    from hub.contract.pages import PagePreview
    from hub.sample.case import SampleCase

    preview = PagePreview(cache_size=2)
    pdf = SampleCase.new().contract_pdf()
    assert preview.page_count("a" * 64, pdf) == 1
    png = preview.png("a" * 64, pdf, 1)
    assert png is not None
    assert png.startswith(b"\x89PNG")
    assert int.from_bytes(png[16:20], "big") == PagePreview.WIDTH  # IHDR width
    assert preview.png("a" * 64, pdf, 2) is None  # no such page
    assert preview.png("a" * 64, pdf, PagePreview.MAX_PAGES + 1) is None
    broken = b"%PDF-1.7\n" + b"\x00garbage" * 1000
    assert preview.page_count("b" * 64, broken) is None
    assert preview.png("b" * 64, broken, 1) is None


async def test_without_poppler_the_page_embeds_the_pdf(pg_engine: Engine,
                                                       site: PageSite) -> None:
    from hub.contract.pages import PagePreview

    token = await in_review(site)
    blind = PagePreview()
    blind.available = False
    app = FastAPI()
    app.include_router(review_router(pg_engine, site.clock, policy=POLICY, preview=blind))
    with TestClient(app) as http:
        shown = http.get(f"/contract/review/{token}", headers=HTML)
        assert shown.status_code == 200
        assert f'<object id="preview" data="/contract/review/{token}/document"' in shown.text
        assert "<img" not in shown.text
        assert http.get(f"/contract/review/{token}/preview/1.png").status_code == 404
