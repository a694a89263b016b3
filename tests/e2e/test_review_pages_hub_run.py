"""The contractor's review page in a real browser against ``hub run``: Debian's chromium
(Playwright) on the link the SMTP peer received, real Kafka, PostgreSQL and the reference
peers. The contractor sees the sample contract set drawn (Japanese text in its embedded
IPAex font), asks for the one-time code, types the code from the mail and agrees; the
process manager records the agreement; the used link then shows its page."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from card_agent.pcsc import PcscBackend
from devkit.pki import ensure_pki
from hub.sample.driver import CaseRun
from hub.sample.timeline import CaseTimeline
from tests.e2e.casestack import CaseStack, fresh_case, with_subject
from tests.support.hubproc import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp,
              pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CODE = re.compile(r"確認コード : ([0-9]{6})")


async def test_contractor_agrees_on_the_review_page_of_hub_run(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    hub = await stack.start()
    case = fresh_case()
    # the case up to the review mail; the card is never used (no signing here)
    creds = ensure_pki(stack.home / "pki").issue_card(case.holder, case.address,
                                                      random.randint(10**6, 10**9))
    run = CaseRun(stack.stage(), case, timeline, backend=PcscBackend(), card=creds,
                  pin="000000", say=None)
    try:
        run.outcome.company_id = f"{random.randint(10**15, 10**16 - 1)}"  # 企業ID
        await run.open_case()
        await run.contract_set()
        token = await run.review_link()  # from the SMTP peer's spool
    finally:
        run.close()
    me = case.authorized.email.lower()

    def code_mail() -> bool:
        return bool(with_subject(stack.mails_to({me}), "確認コード"))

    async with async_playwright() as play:
        browser = await play.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(locale="ja-JP", viewport={"width": 1366,
                                                                    "height": 768})
            shown = await page.goto(f"{hub.url}/contract/review/{token}")
            assert shown is not None
            assert shown.status == 200
            await expect(page.locator("#case-id")).to_have_text(case.case_id)
            image = page.locator("#preview img").first
            await expect(image).to_be_visible()
            assert await image.evaluate("img => img.complete && img.naturalWidth") == 900
            await page.get_by_label(me).check()
            await page.locator("#send-code").click()
            await expect(page.locator("#code-sent")).to_contain_text(me)
            await wait_for(code_mail, timeout_s=60, what="the confirmation code mail")
            body = with_subject(stack.mails_to({me}), "確認コード")[-1].get_body(("plain",))
            assert body is not None
            match = CODE.search(str(body.get_content()))
            assert match is not None
            await page.locator("#agree-code").fill(match.group(1))
            await page.locator("#agree").click()
            await expect(page.locator("#done")).to_contain_text("同意を受け付けました")
            agreed = await timeline.wait_for(
                "econtract.step-recorded", 60,
                lambda e: e.payload.status.value == "contractor-agreed")
            assert agreed.correlation_id == case.case_id
            used = await page.goto(f"{hub.url}/contract/review/{token}")
            assert used is not None
            assert used.status == 410
            await expect(page.locator("h1")).to_contain_text("このリンクは使用済みです")
        finally:
            await browser.close()
