"""The staff console in a real browser (Debian's chromium driven by Playwright) against
``hub run``, Kafka, PostgreSQL and the reference peers (tests/e2e/casestack.py):

- a 承認者 logs in, finds the case by its counterparty, opens it, agrees as the city and
  sees it concluded with both signatures valid on re-validation; the 合意締結証明書
  downloads as a PDF. The case gets there for real: the contractor agrees and signs with
  the virtual IC card (pcscd + vpcd), the city's signer signs on SoftHSM2;
- staff of another entity gets the 403 page (IAM-3) for that case's URL;
- the case search works with the keyboard only (Tab and Enter reach the search and a
  result);
- a 管理者 filters the dead letters by reason, opens one, confirms its replay, and the
  mail it carried is sent once by the hub's mail connector to the SMTP peer;
- axe-core (npm, deploy/setup.d/30-browser.sh) finds no serious or critical violation on
  any page (log-in, dashboard, cases, case, 403, 利用者登録, デッドレター), in Japanese and
  in English.

Each page's screenshot at 1366×768 goes to ``HUB_CONSOLE_SCREENSHOTS`` when set (the
repository's are in docs/console/), else to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
from sqlmodel import Session, select

from hub.db import ProcessedMessage
from hub.delivery import Delivery
from hub.dlq import dead_letter_headers
from hub.identity import LocalUsers
from hub.sample.timeline import CaseTimeline
from hub.staff import local_token, token_sha256
from pipelines.contract.store import load_case, save_case
from schemas.contract import ContractStatus
from schemas.envelope import new_envelope, utc_now
from schemas.mail import MailKind, MailRequested
from schemas.surety import SuretyProduct
from schemas.topics import Topics
from schemas.wire import encode
from tests.e2e.casestack import CaseStack, case_run, fresh_case
from tests.support.hubproc import ROOT, wait_for
from tests.support.kafka import publish_raw
from tests.support.staff import case as stored_case

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.pcsc, pytest.mark.softhsm, pytest.mark.tsa, pytest.mark.smtp]

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "deploy" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "console-test-password"
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}


def _users(stack: CaseStack) -> LocalUsers:
    return LocalUsers(stack.home / "staff-users.json")


async def _start(stack: CaseStack) -> str:
    """``hub run`` with the local user store on; the stage's static token (the contract
    set's upload) stays valid beside it."""
    hub = await stack.start(
        HUB_STAFF__TOKEN_SHA256=json.dumps([token_sha256(local_token(stack.home))]))
    return hub.url


def _shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("HUB_CONSOLE_SCREENSHOTS") or tmp_path / "shots")
    where.mkdir(parents=True, exist_ok=True)
    return where


async def _screenshot(page: Page, where: Path, name: str) -> None:
    path = where / f"{name}.png"
    await page.screenshot(path=str(path))
    from PIL import Image

    with Image.open(path) as shot:  # a palette PNG: a tenth of the size, text stays sharp
        shot.convert("RGB").quantize(colors=64).save(path, optimize=True)
    assert path.stat().st_size > 5_000


async def _accessible(page: Page, name: str) -> None:
    """axe-core's violations of impact serious or critical on ``page``: none. (The pages
    allow no script: the pages are opened with ``bypass_csp`` so that axe can be added.)"""
    if not AXE.exists():
        pytest.fail(f"axe-core is missing ({AXE}): run `bash deploy/setup.d/30-browser.sh`")
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, (name, serious)


async def _browser(play: Any) -> Browser:
    browser: Browser = await play.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    return browser


async def _login(page: Page, hub_url: str, username: str) -> None:
    await page.goto(hub_url + "/console/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console/dashboard$"))


async def test_an_approver_finds_the_case_agrees_as_the_city_and_sees_it_concluded(
        case_stack: CaseStack, case_timeline: CaseTimeline, tmp_path: Path) -> None:
    stack = case_stack
    case = fresh_case()
    _users(stack).add("shonin", PASSWORD, email=case.city_officer.email,
                      entities=[case.entity], roles=["approver"], name=case.city_officer.name)
    _users(stack).add("other", PASSWORD, email="shonin@pref.saitama.example.jp",
                      entities=["saitama-pref"], roles=["approver"])
    hub_url = await _start(stack)
    shots = _shots(tmp_path)
    with case_run(stack, case, case_timeline) as run:
        await run.register()
        await run.open_case()
        await run.surety(SuretyProduct.PERFORMANCE)
        await run.contract_set()
        await run.contractor_agrees()
        await run.contractor_signs()
    async with async_playwright() as play:
        browser = await _browser(play)
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="ja-JP", bypass_csp=True)
            await _login(page, hub_url, "shonin")
            await page.click("nav >> text=案件一覧")
            await page.fill("#counterparty", "北東組(株)")  # the 商号 as people type it
            await page.click("#search")
            result = page.locator(f'#results a[href="/console/cases/{case.case_id}"]')
            await expect(result).to_be_visible()
            await expect(page.locator("#results tbody tr")).to_have_count(1)
            await expect(page.locator("#results tbody tr")).to_contain_text("1/2")
            await _accessible(page, "cases")
            await _screenshot(page, shots, "cases")
            await result.click()
            await expect(page.locator("#case-status")).to_have_text(
                "受注者署名済み（発注者の合意待ち）")
            await _accessible(page, "case, awaiting the city")
            await _screenshot(page, shots, "case-awaiting-city")
            await page.click("#agree")
            await expect(page.locator("[role=status]")).to_contain_text(
                "発注者の合意を受け付けました")

            def concluded() -> bool:
                with Session(stack.engine) as db:
                    state = load_case(db, case.case_id)
                return state is not None and state.status is ContractStatus.CONCLUDED

            await wait_for(concluded, 90, "the case's conclusion")
            await page.reload()
            await expect(page.locator("#case-status")).to_have_text("締結済み")
            await page.click("#revalidate")
            await expect(page.locator("#validation")).to_have_text("有効")
            rows = page.locator("#signatures tbody tr")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(0)).to_contain_text("ContractorSignature")
            await expect(rows.nth(1)).to_contain_text("CitySignature")
            for n in range(2):
                await expect(rows.nth(n).locator("td.ok")).to_have_text("有効")
            await expect(page.locator("#timeline")).to_contain_text("econtract.concluded")
            await expect(page.locator("#timeline")).to_contain_text(
                "staff: contracts.city-agreement")
            await _accessible(page, "case, concluded")
            await _screenshot(page, shots, "case-concluded")
            async with page.expect_download() as download:
                await page.click("#certificate")
            pdf = Path(await (await download.value).path())
            assert (await asyncio.to_thread(pdf.read_bytes)).startswith(b"%PDF-")
            await page.goto(hub_url + "/console/dashboard")
            await expect(page.locator("#cases-by-status")).to_contain_text("締結済み")
            await _accessible(page, "dashboard")
            await _screenshot(page, shots, "dashboard")

            other = await browser.new_page(viewport=VIEWPORT, locale="ja-JP", bypass_csp=True)
            await _login(other, hub_url, "other")
            answer = await other.goto(hub_url + f"/console/cases/{case.case_id}")
            assert answer is not None
            assert answer.status == 403
            await expect(other.locator(".rule")).to_have_text("IAM-3")
            await expect(other.locator("[role=alert]")).to_contain_text(case.entity)
            await _accessible(other, "403")
            await _screenshot(other, shots, "forbidden")
        finally:
            await browser.close()


async def test_keyboard_case_search_a_dead_letter_replayed_once_and_pages_accessible(
        case_stack: CaseStack, tmp_path: Path) -> None:
    stack = case_stack
    with Session(stack.engine) as db, db.begin():
        for n in range(3):
            save_case(db, stored_case(f"KB-{n}", "kawagoe-city", "shonin@city.example.jp",
                                      ContractStatus.CONTRACTOR_SIGNED if n else
                                      ContractStatus.APPLIED))
        save_case(db, stored_case("SP-1", "saitama-pref", "x@pref.saitama.example.jp",
                                  ContractStatus.APPLIED))
    tag = secrets.token_hex(4)
    entity = f"e2e-{tag}"  # the dead letter's: no other test's letter is of it
    _users(stack).add("kanri", PASSWORD, email="kanri@city.example.jp",
                      entities=["kawagoe-city", entity], roles=["admin", "approver"],
                      name="管理 花子")
    hub_url = await _start(stack)
    to = f"dlq-{tag}@kensetsu.example.jp"
    letter = _dead_mail(entity, to)
    await publish_raw(stack.kafka, Topics.MAIL_REQUESTS.dlq, [letter])
    shots = _shots(tmp_path)
    async with async_playwright() as play:
        browser = await _browser(play)
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="ja-JP", bypass_csp=True)
            await page.goto(hub_url + "/console/login")
            await _accessible(page, "login")
            await _screenshot(page, shots, "login")
            # keyboard only from here: the user name field has the focus
            await page.keyboard.type("kanri")
            await page.keyboard.press("Tab")
            await page.keyboard.type(PASSWORD)
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(re.compile(r"/console/dashboard$"))
            await _tab_to(page, "a[href='/console/cases']")
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(re.compile(r"/console/cases$"))
            await _tab_to(page, "#counterparty")
            await page.keyboard.type("デモ建設")
            await page.keyboard.press("Enter")
            await expect(page.locator("#results tbody tr")).to_have_count(3)  # not SP-1
            await _tab_to(page, "#results a[href='/console/cases/KB-1']")
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(re.compile(r"/console/cases/KB-1$"))
            await expect(page.locator("#agree")).to_be_visible()
            # English, with the dead letters, lag and connectors of an administrator
            await page.goto(hub_url + "/console/dashboard?lang=en")
            await expect(page.locator("#connectors")).to_contain_text("connector.mail")
            await _accessible(page, "dashboard (en)")
            await _screenshot(page, shots, "dashboard-admin-en")
            await page.goto(hub_url + "/console/cases?counterparty=%E3%83%87%E3%83%A2")
            await _accessible(page, "cases (en)")
            await page.goto(hub_url + "/console/registrations?lang=ja")
            await expect(page.locator("h1")).to_have_text("利用者登録")
            await _accessible(page, "registrations")
            await _screenshot(page, shots, "registrations")
            # a 管理者 filters the dead letters by reason, replays one: processed once
            await page.goto(hub_url + "/console/dead-letters")
            await page.select_option("#f-reason", "retries-exhausted")
            await page.select_option("#f-entity", entity)
            await page.click("#filter")
            await expect(page.locator("#letters tbody tr")).to_have_count(1)
            await _accessible(page, "dead letters")
            await _screenshot(page, shots, "dead-letters")
            await page.click("#letters tbody a")
            await expect(page.locator("#reason")).to_have_text("retries-exhausted")
            await _accessible(page, "dead letter")
            await page.click("#replay-one")
            await expect(page.locator("#replay")).to_be_visible()
            await _accessible(page, "dead letter, confirm")
            await _screenshot(page, shots, "dead-letter-confirm")
            await page.click("#replay")
            await expect(page.locator("#replayed")).to_be_visible()
            await wait_for(lambda: bool(stack.mails_to({to})), 60, "the replayed mail")
            await wait_for(lambda: _processed(stack, letter), 30, "its processing record")
            assert len(stack.mails_to({to})) == 1
            await page.goto(hub_url + "/console/dashboard?lang=en")
            await page.goto(hub_url + "/console/cases/KB-1")
            await expect(page.locator("#case-status")).to_have_text(
                "Contractor signed (awaiting the city)")
            await _accessible(page, "case (en)")
            forbidden = await page.goto(hub_url + "/console/cases/SP-1")
            assert forbidden is not None
            assert forbidden.status == 403
            await _accessible(page, "403 (en)")
        finally:
            await browser.close()


def _dead_mail(entity: str, to: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A 利用者登録のお知らせ the mail connector dead-lettered after its retries, as the
    hub writes it to ``proc.mail.requests.dlq``."""
    request = MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION, to=(to,),
                            values={"procuring_entity_name": "川越市",
                                    "company_name": "北東組株式会社",
                                    "company_id": "1234567890123456",
                                    "contact_name": "北東 次郎",
                                    "contact_address": "北東市中央町2丁目3番4号"})
    key, value, headers = encode(new_envelope(request, correlation_id=str(request.mail_id),
                                              procuring_entity=entity, producer="e2e"))
    delivery = Delivery(topic=Topics.MAIL_REQUESTS.name, partition=0, offset=0, key=key,
                        value=value, headers=headers)
    return key or b"", value, dead_letter_headers(
        delivery, consumer="connector.mail", reason="retries-exhausted",
        error_class="SMTPConnectError", error_message="connection refused", attempts=3,
        text_ja="メールサーバーに接続できませんでした。", text_en="The mail relay refused.",
        history=[{"attempt": 1, "error": "connection refused"}],
        at=utc_now().isoformat())


def _processed(stack: CaseStack, letter: tuple[bytes, bytes, list[tuple[str, bytes]]],
               ) -> bool:
    message_id = dict(letter[2])["x-message-id"].decode()
    with Session(stack.engine) as db:
        rows = db.exec(select(ProcessedMessage).where(
            ProcessedMessage.consumer == "connector.mail",
            ProcessedMessage.message_id == message_id)).all()
    return [r.outcome for r in rows] == ["done"]


async def _tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Press Tab until ``selector`` has the focus (at most ``presses`` times)."""
    target = page.locator(selector)
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {selector}")
