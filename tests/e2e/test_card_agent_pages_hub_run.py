"""The contractor's pages in a real browser against ``hub run``: Debian's chromium
(Playwright) on the hub's /contractor pages, the local card agent (``card-agent serve``)
with the virtual card in vpcd, real Kafka, PostgreSQL and the SMTP peer.

- 利用者登録: the 利用者登録のお知らせ mail reaches the ICカード利用部署 address (REG-10).
- Then 利用者変更 (the mail goes to the new address), ICカード更新 to a second card, the
  old card refused at login (RNW-7), and three wrong PINs: 2 then 1 retries shown, the
  third locks the card and the page says so (PIN-1)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect
from sqlmodel import Session

from card_agent.client import hub_http_client
from card_agent.pcsc import PcscBackend
from card_agent.serve import AgentService
from card_agent.tsa import AgentTimeStamper
from card_agent.virtualcard import READER, VirtualCard, seat, wait_reader
from devkit.pki import CardCredentials, ensure_pki
from pipelines.registration.qualification_csv import import_qualifications_csv
from schemas.envelope import utc_now
from schemas.registration import Domain
from tests.e2e.casestack import CaseHub, CaseStack, fresh_case, with_subject
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
            return await _register(await browser.new_page(), hub_url, fields, password, pin)
        finally:
            await browser.close()


async def _register(page: Page, hub_url: str, fields: dict[str, object], password: str,
                    pin: str) -> str:
    """利用者登録 on the hub's page; the 企業ID the page shows once the hub registered it."""
    await page.goto(hub_url + "/contractor/register")
    await page.select_option("#system", str(fields["system"]))
    await page.select_option("#domain", str(fields["domain"]))
    for name in ("procuring_entity", "user_id", "trade_name", "department_name"):
        await page.fill(f"#{name}", str(fields[name]))
    await page.fill("#password", password)
    for prefix in ("representative_contact", "card_department_contact"):
        contact = fields[prefix]
        assert isinstance(contact, dict)
        await _fill_contact(page, prefix, contact)
    await page.click("#next")
    popup = await _with_pin(page, "#apply", [pin])
    await expect(popup.locator("#done")).to_be_visible()
    await expect(page.locator("#company-id")).not_to_be_empty(timeout=60_000)
    return await page.locator("#company-id").inner_text()


async def _fill_contact(page: Page, prefix: str, contact: dict[str, object]) -> None:
    for key, value in contact.items():
        if value:
            await page.fill(f'[name="{prefix}.{key}"]', str(value))


async def _with_pin(page: Page, button: str, pins: list[str]) -> Page:
    """Click ``button``; in the agent's own window (its origin, not the hub's), type each
    PIN, one attempt each."""
    async with page.expect_popup() as opened:
        await page.click(button)
    popup = await opened.value
    for pin in pins:
        await popup.wait_for_selector("#pin")
        assert popup.url.startswith("http://127.0.0.1:")
        await popup.fill("#pin", pin)
        await popup.click("#submit")
    return popup


async def test_change_renew_old_card_refused_and_wrong_pins_lock(
    case_stack: CaseStack,
) -> None:
    stack = case_stack
    agent_port = free_port()
    hub = await stack.start(HUB_GATEWAY_AGENT_URL=f"http://127.0.0.1:{agent_port}")
    case = fresh_case()
    fields = case.registration_fields()
    with Session(stack.engine) as session, session.begin():
        import_qualifications_csv(session, case.qualification_csv(), case.entity,
                                  Domain.WORKS, utc_now())
    pki = ensure_pki(stack.home / "pki")
    creds = pki.issue_card(case.holder, case.address, random.randint(10**6, 10**9))
    renewed = pki.issue_card(case.holder, case.address, random.randint(10**6, 10**9))
    card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    http = hub_http_client(hub.url)
    agent = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[hub.url],
                         chain=creds.chain, reader=READER, port=agent_port,
                         tsa=AgentTimeStamper(stack.hub_env["HUB_TSA_URL"], pki.trust_roots))
    agent.start()
    new_address = f"changed-{random.randint(10**5, 10**6)}@hokuto.example.jp"
    try:
        async with async_playwright() as play:
            browser = await play.chromium.launch(executable_path=str(CHROMIUM),
                                                 headless=True)
            try:
                page = await browser.new_page()
                await _register(page, hub.url, fields, case.password, PIN)
                await _change_contact(page, hub, fields, new_address)
                card = await _renew_to(page, hub, fields, card, renewed)
                card.stop()
                wait_reader(present=False)
                # the old card again: replaced by the renewal, refused at login (RNW-7)
                card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
                await page.goto(hub.url + "/contractor/jobs")
                await _with_pin(page, "#login", [PIN])
                await expect(page.locator("#status")).to_contain_text("[RNW-7]",
                                                                      timeout=30_000)
                await expect(page.locator("#logged-in")).to_have_count(0)
                await _wrong_pins_lock(page, hub)
            finally:
                await browser.close()
    finally:
        agent.stop()
        http.close()
        card.stop()
        wait_reader(present=False)

    def mailed() -> bool:
        return bool(with_subject(stack.mails_to({new_address}), "利用者変更のお知らせ"))

    await wait_for(mailed, timeout_s=60, what="the 利用者変更 mail at the new address")


async def _change_contact(page: Page, hub: CaseHub, fields: dict[str, object],
                          new_address: str) -> None:
    """利用者変更: the ICカード利用部署's person and e-mail change."""
    await page.goto(hub.url + "/contractor/change")
    await page.select_option("#system", str(fields["system"]))
    await page.fill("#procuring_entity", str(fields["procuring_entity"]))
    contact = fields["card_department_contact"]
    assert isinstance(contact, dict)
    await _fill_contact(page, "card_department_contact",
                        {**contact, "person_name": "北東 三郎", "email": new_address,
                         "email_confirmation": new_address})
    await page.click("#next")
    await _with_pin(page, "#apply", [PIN])
    await expect(page.locator("#done")).to_be_visible(timeout=60_000)


async def _renew_to(page: Page, hub: CaseHub, fields: dict[str, object], card: VirtualCard,
                    renewed: CardCredentials) -> VirtualCard:
    """ICカード更新: the old card's PIN, then the new card's in the same agent window.
    Returns the new card, seated in the reader."""
    await page.goto(hub.url + "/contractor/renew")
    await page.select_option("#system", str(fields["system"]))
    await page.fill("#procuring_entity", str(fields["procuring_entity"]))
    await page.click("#next")
    popup = await _with_pin(page, "#apply", [PIN])
    await expect(popup.locator("#step")).to_contain_text("新しいICカード")
    card.stop()
    wait_reader(present=False)
    new_card = seat(VirtualCard(renewed.cert_der, renewed.key_path, PIN).start())
    await popup.click("#reload")
    await expect(popup.locator("#step")).to_contain_text("新しいICカード")
    await popup.fill("#pin", PIN)
    await popup.click("#submit")
    await expect(popup.locator("#done")).to_be_visible()
    await expect(page.locator("#done")).to_be_visible(timeout=60_000)
    return new_card


async def _wrong_pins_lock(page: Page, hub: CaseHub) -> None:
    """Three wrong PINs at login: 2 then 1 retries shown, never retried by itself; the
    third locks the card and both windows say what to do (PIN-1)."""
    await page.goto(hub.url + "/contractor/jobs")
    popup = await _with_pin(page, "#login", ["1111"])
    await expect(popup.locator("#violation")).to_contain_text("残り2回")
    await expect(popup.locator("#retries")).to_contain_text("残り2回")
    await popup.fill("#pin", "2222")
    await popup.click("#submit")
    await expect(popup.locator("#violation")).to_contain_text("残り1回")
    await popup.fill("#pin", "3333")
    await popup.click("#submit")
    await expect(popup.locator("#violation")).to_contain_text("認証局")
    await expect(popup.locator("#pin")).to_have_count(0)
    await expect(page.locator("#status")).to_contain_text("[PIN-1]")

