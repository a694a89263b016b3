"""The contractor's pages in a real browser (Playwright driving Debian's chromium) with the
local card agent (``card-agent serve``), the virtual card in pcscd's vpcd reader, the
gateway on PostgreSQL with the real registration handlers, and the reference TSA.

The hub's pages are served on ``http://127.0.0.1:<port>``; ``http://localhost:<port>``
is the same server under another origin, the agent's configured hub being the first.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy.engine import Engine

from card_agent.client import hub_http_client
from card_agent.pcsc import PcscBackend
from card_agent.serve import AgentService
from card_agent.tsa import AgentTimeStamper
from card_agent.virtualcard import VirtualCard
from devkit.pki import CardCredentials, DevPki
from hub.gateway.config import GatewayConfig
from hub.gateway.jobs import create_job
from hub.gateway.models import SigningJobRow
from hub.gateway.pages import build_pages_router
from hub.gateway.routes import build_router
from tests.card.fixtures import PIN, READER, seat, wait_reader
from tests.card.hubside import COMPANIES, ENTITY, PASSWORD, USER_A, drive, seed_qualification
from tests.card.server import LoopbackServer
from tests.integration.test_card_agent_cli import creds, pki, tsa_url, vcard
from tests.integration.test_card_agent_serve import contract_pdf

# The entity, system and domain the agent logs in to (as `card-agent serve --entity`).
WHERE = {"procuring_entity": ENTITY, "system": "e-contract", "domain": "works"}

pytestmark = [pytest.mark.pcsc, pytest.mark.tsa, pytest.mark.postgres]

__all__ = ["creds", "pki", "tsa_url", "vcard"]  # fixtures, imported for pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: deploy/setup.d/30-browser.sh installs it")
    with sync_playwright() as play:
        found = play.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield found
        found.close()


class Stack:
    def __init__(self, hub_url: str, cfg: GatewayConfig, agent: AgentService) -> None:
        self.hub_url, self.cfg, self.agent = hub_url, cfg, agent


@pytest.fixture
def stack(pg_engine: Engine, pki: DevPki, creds: CardCredentials,
          tsa_url: str) -> Iterator[Stack]:
    cfg = GatewayConfig(engine=pg_engine, card_roots=pki.trust_roots,
                        signature_roots=pki.trust_roots)
    seed_qualification(pg_engine, USER_A, cfg.now())
    stop, done = threading.Event(), set[int]()

    def pipeline() -> None:  # the registration consumer, as the hub would run it
        while not stop.wait(0.1):
            drive(pg_engine, cfg.now(), done)

    worker = threading.Thread(target=pipeline, daemon=True)
    worker.start()
    app = FastAPI()
    app.include_router(build_router(cfg))
    server = LoopbackServer(app)
    http = hub_http_client(server.url)
    agent = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[server.url],
                         chain=creds.chain, reader=READER, port=0,
                         tsa=AgentTimeStamper(tsa_url, pki.trust_roots))
    agent.start()
    app.include_router(build_pages_router(f"http://127.0.0.1:{agent.port}"))
    with server:
        yield Stack(server.url, cfg, agent)
    agent.stop()
    http.close()
    stop.set()
    worker.join(5)


CONTACT = {"contact_name": "営業部", "postal_code": "123-0000",
           "address": COMPANIES[USER_A][2], "person_name": "日立 次郎",
           "phone": "044-812-7358", "email": "ic-card@example.jp"}


def fill_contact(page: Page, prefix: str, contact: dict[str, str], confirm: str) -> None:
    for name, value in contact.items():
        page.fill(f'[name="{prefix}.{name}"]', value)
    page.fill(f'[name="{prefix}.email_confirmation"]', confirm)


def with_pin(page: Page, button: str, pins: list[str]) -> Page:
    """Click ``button``; in the agent's own window, type each PIN (one attempt each)."""
    with page.expect_popup() as opened:
        page.click(button)
    popup = opened.value
    for pin in pins:
        popup.wait_for_selector("#pin")
        assert popup.url.startswith("http://127.0.0.1:")  # the agent's origin, not the hub's
        popup.fill("#pin", pin)
        popup.click("#submit")
    return popup


def register(page: Page, stack: Stack) -> None:
    page.goto(stack.hub_url + "/contractor/register")
    expect(page.locator("#holder")).to_contain_text(COMPANIES[USER_A][1])  # 契約者 from the card
    page.select_option("#system", "e-contract")
    page.select_option("#domain", "works")
    for name, value in (("procuring_entity", ENTITY), ("user_id", USER_A),
                        ("trade_name", COMPANIES[USER_A][0]), ("password", PASSWORD),
                        ("department_name", "営業部")):
        page.fill(f"#{name}", value)
    fill_contact(page, "representative_contact", CONTACT, CONTACT["email"])
    fill_contact(page, "card_department_contact", CONTACT, "typo@example.jp")
    page.click("#next")
    mismatch = page.locator('[id="err-card_department_contact.email_confirmation"]')
    expect(mismatch).to_contain_text("[REG-7]")
    page.fill("#password", PASSWORD)
    page.fill('[name="card_department_contact.email_confirmation"]', CONTACT["email"])
    page.fill('[name="card_department_contact.postal_code"]', "1230000")  # REG-7: 123-4567
    page.click("#next")
    expect(page.locator('[id="err-card_department_contact.postal_code"]')).to_contain_text(
        "[REG-7]")
    page.fill("#password", PASSWORD)
    page.fill('[name="card_department_contact.postal_code"]', CONTACT["postal_code"])
    page.click("#next")
    expect(page.locator("#apply")).to_be_visible()
    popup = with_pin(page, "#apply", [PIN])
    expect(popup.locator("#done")).to_be_visible()
    expect(page.locator("#company-id")).not_to_be_empty(timeout=30_000)


def test_register_change_and_renew_through_the_pages(
    browser: Browser, stack: Stack, vcard: VirtualCard, pki: DevPki, creds: CardCredentials,
) -> None:
    page = browser.new_page()
    register(page, stack)
    # 利用者変更: the card department's contact changes
    page.goto(stack.hub_url + "/contractor/change")
    page.select_option("#system", "e-contract")
    page.fill("#procuring_entity", ENTITY)
    fill_contact(page, "card_department_contact",
                 {**CONTACT, "person_name": "北東 三郎", "email": "new@example.jp"},
                 "new@example.jp")
    page.click("#next")
    with_pin(page, "#apply", [PIN])
    expect(page.locator("#done")).to_be_visible(timeout=30_000)
    # ICカード更新: old card's PIN, then the new card's in the same agent window
    new_creds = pki.issue_card(COMPANIES[USER_A][1], COMPANIES[USER_A][2], 9502)
    page.goto(stack.hub_url + "/contractor/renew")
    page.select_option("#system", "e-contract")
    page.fill("#procuring_entity", ENTITY)
    page.click("#next")
    popup = with_pin(page, "#apply", [PIN])
    expect(popup.locator("#step")).to_contain_text("新しいICカード")
    vcard.stop()
    wait_reader(present=False)
    new_card = seat(VirtualCard(new_creds.cert_der, new_creds.key_path, PIN).start())
    try:
        popup.click("#reload")
        expect(popup.locator("#step")).to_contain_text("新しいICカード")
        popup.fill("#pin", PIN)
        popup.click("#submit")
        expect(popup.locator("#done")).to_be_visible()
        expect(page.locator("#done")).to_be_visible(timeout=30_000)
    finally:
        new_card.stop()
        wait_reader(present=False)
    # the old card is refused at login: replaced by the renewal (RNW-7)
    old_card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    try:
        page.goto(stack.hub_url + "/contractor/jobs")
        with_pin(page, "#login", [PIN])
        expect(page.locator("#status")).to_contain_text("[RNW-7]", timeout=30_000)
        expect(page.locator("#logged-in")).to_have_count(0)
    finally:
        old_card.stop()
        wait_reader(present=False)


def test_wrong_pins_then_locked_in_the_agents_window(
    browser: Browser, stack: Stack, vcard: VirtualCard,
) -> None:
    page = browser.new_page()
    page.goto(stack.hub_url + "/contractor/jobs")
    popup = with_pin(page, "#login", ["1111"])
    expect(popup.locator("#violation")).to_contain_text("残り2回")
    expect(popup.locator("#retries")).to_contain_text("残り2回")
    popup.fill("#pin", "2222")
    popup.click("#submit")
    expect(popup.locator("#violation")).to_contain_text("残り1回")
    popup.fill("#pin", "3333")
    popup.click("#submit")
    expect(popup.locator("#violation")).to_contain_text("認証局")
    expect(popup.locator("#pin")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("[PIN-1]")


def test_another_origin_cannot_call_the_agent(
    browser: Browser, stack: Stack, vcard: VirtualCard,
) -> None:
    page = browser.new_page()
    other = stack.hub_url.replace("127.0.0.1", "localhost")
    page.goto(other + "/contractor/")
    agent = f"http://127.0.0.1:{stack.agent.port}"
    for script in (f"fetch('{agent}/pair', {{method: 'POST'}})",
                   f"fetch('{agent}/status', {{headers: {{Authorization: 'Bearer x'}}}})"):
        error = page.evaluate(f"{script}.then(r => 'answered ' + r.status, e => e.name)")
        assert error == "TypeError"  # refused by CORS: the page learns nothing
    # the configured hub's page pairs
    page.goto(stack.hub_url + "/contractor/")
    assert page.evaluate("cardAgent.pair().then(t => t.length)") > 20


def test_sign_shows_the_pdfs_amount_not_the_hubs(
    browser: Browser, stack: Stack, vcard: VirtualCard,
) -> None:
    page = browser.new_page()
    register(page, stack)
    pdf = contract_pdf(12_100_000)
    with stack.cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="北東市道改良工事", parties=["北東市", COMPANIES[USER_A][0]],
                            amount_yen=99_000_000, document=pdf, now=stack.cfg.now()).id
    page.goto(stack.hub_url + "/contractor/jobs")
    with_pin(page, "#login", [PIN])
    expect(page.locator("button.sign")).to_have_count(1)
    with page.expect_popup() as opened:
        page.click("button.sign")
    popup = opened.value
    expect(popup.locator("#doc-amount")).to_have_text("12,100,000 円")
    expect(popup.locator("#mismatch")).to_contain_text("99,000,000")
    expect(popup.locator("#doc-pages")).to_have_text("2")
    assert popup.evaluate("document.getElementById('preview').naturalWidth") == 600
    expect(popup.locator("#doc-sha256")).to_have_text(hashlib.sha256(pdf).hexdigest())
    popup.fill("#pin", PIN)
    popup.click("#submit")
    expect(page.locator("#signed")).to_be_visible(timeout=30_000)
    with stack.cfg.transaction() as session:
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        assert row.status == "signed"
