"""利用者登録 in a real browser against ``hub run``: Debian's chromium (Playwright) on the
hub's /contractor/register page, the local card agent (``card-agent serve``) with the
virtual card in vpcd, real Kafka, PostgreSQL and the SMTP peer. The contractor receives
the 利用者登録のお知らせ mail at the ICカード利用部署 address (REG-10)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect
from sqlmodel import Session

from card_agent.client import hub_http_client
from card_agent.pcsc import PcscBackend
from card_agent.serve import AgentService
from card_agent.tsa import AgentTimeStamper
from card_agent.virtualcard import READER, VirtualCard, seat
from devkit.pki import ensure_pki
from pipelines.registration.qualification_csv import import_qualifications_csv
from schemas.envelope import utc_now
from schemas.registration import Domain
from tests.e2e.casestack import CaseStack, fresh_case, with_subject
from tests.support.hubproc import free_port, wait_for

# The entity, system and domain the agent logs in to (as `card-agent serve --entity`).
WHERE = {"procuring_entity": "mlit", "system": "e-contract", "domain": "works"}

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.pcsc,
              pytest.mark.smtp, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
PIN = "246810"


async def test_register_through_the_web_form_and_receive_the_mail(
    case_stack: CaseStack,
) -> None:
    stack = case_stack
    agent_port = free_port()
    hub = await stack.start(HUB_GATEWAY_AGENT_URL=f"http://127.0.0.1:{agent_port}")
    case = fresh_case()
    with Session(stack.engine) as session, session.begin():
        import_qualifications_csv(session, case.qualification_csv(), case.entity,
                                  Domain.WORKS, utc_now())
    pki = ensure_pki(stack.home / "pki")
    creds = pki.issue_card(case.holder, case.address, random.randint(10**6, 10**9))
    card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    http = hub_http_client(hub.url)
    agent = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[hub.url],
                         chain=creds.chain, reader=READER, port=agent_port,
                         tsa=AgentTimeStamper(stack.hub_env["HUB_TSA_URL"], pki.trust_roots))
    agent.start()
    try:
        company_id = await _register_in_browser(hub.url, case.registration_fields(),
                                                case.password, PIN)
    finally:
        agent.stop()
        http.close()
        card.stop()
    address = case.card_email.lower()

    def mailed() -> bool:
        return bool(with_subject(stack.mails_to({address}), "利用者登録のお知らせ"))

    await wait_for(mailed, timeout_s=60, what="the 利用者登録 mail")
    notice = with_subject(stack.mails_to({address}), "利用者登録のお知らせ")[0]
    assert f"企業ID : {company_id}" in notice.get_content()  # the one the page showed


async def _register_in_browser(hub_url: str, fields: dict[str, object], password: str,
                               pin: str) -> str:
    async with async_playwright() as play:
        browser = await play.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page()
            await page.goto(hub_url + "/contractor/register")
            await page.select_option("#system", str(fields["system"]))
            await page.select_option("#domain", str(fields["domain"]))
            for name in ("procuring_entity", "user_id", "trade_name", "department_name"):
                await page.fill(f"#{name}", str(fields[name]))
            await page.fill("#password", password)
            for prefix in ("representative_contact", "card_department_contact"):
                contact = fields[prefix]
                assert isinstance(contact, dict)
                for key, value in contact.items():
                    if value:
                        await page.fill(f'[name="{prefix}.{key}"]', str(value))
            await page.click("#next")
            async with page.expect_popup() as opened:
                await page.click("#apply")
            popup = await opened.value
            await popup.wait_for_selector("#pin")
            await popup.fill("#pin", pin)
            await popup.click("#submit")
            await expect(popup.locator("#done")).to_be_visible()
            await expect(page.locator("#company-id")).not_to_be_empty(timeout=60_000)
            return await page.locator("#company-id").inner_text()
        finally:
            await browser.close()

