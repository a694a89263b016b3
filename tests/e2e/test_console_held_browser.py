"""The REG-11 queue's staff steps on the 利用者登録 page in a real browser (Debian's
chromium driven by Playwright) against a hub in this process with the real Kafka broker
and PostgreSQL (tests/support/tally_hub.py): a 管理者 opens the held registration's
rejection, confirms it, and the step is audited with the person, once.
axe-core finds no serious or critical violation on the page with its actions and on the
confirmation step. The pipeline's answer is tested in
tests/integration/test_console_held_registrations.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect
from sqlmodel import Session

from hub import audit
from hub.db import create_db_engine
from schemas.registration import RegistrationNeedsConfirmation
from tests.e2e.test_console_browser import VIEWPORT, _accessible, _browser, _screenshot, _shots
from tests.integration.test_registration_store import handle, of, seed
from tests.support.tally_hub import ADMIN, PASSWORD, tally_hub
from tests.unit.test_registration_rules import card, command_of, qual, register

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def test_an_administrator_rejects_a_held_registration_in_the_browser(
        kafka_bootstrap: str, pg_url: str, unique: str, tmp_path: Path) -> None:
    engine = create_db_engine(pg_url)
    try:
        seed(engine, qual("mlit"))
        mlit = {"entity": "mlit", "system": "e-contract"}
        handle(engine, command_of(register(**mlit)))
        (held,) = of(handle(engine, command_of(register(**mlit, the_card=card("122"),
                                                        rep=None))),
                     RegistrationNeedsConfirmation)
    finally:
        engine.dispose()
    shots = _shots(tmp_path)
    async with tally_hub(kafka_bootstrap, pg_url, unique, tmp_path) as site, \
            async_playwright() as play:
        browser = await _browser(play)
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="ja-JP", bypass_csp=True)
            await page.goto(site.url + "/console/login")
            await page.fill("#username", "kanri")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(re.compile(r"/console/dashboard$"))
            await page.click("nav a[href='/console/registrations']")
            row = page.locator(f"#held-{held.confirmation_id}")
            await expect(row).to_contain_text("北東組株式会社")
            await _accessible(page, "registrations with the REG-11 steps")
            await row.locator("a.to-reject").click()
            await expect(page.locator("#held-reject")).to_be_visible()
            await _accessible(page, "registrations, confirm the rejection")
            await _screenshot(page, shots, "registration-held-reject")
            await page.click("#held-reject")
            await expect(page.locator("#held-done")).to_be_visible()
            await page.goto(site.url + "/console/registrations?lang=en")
            await _accessible(page, "registrations (en)")
        finally:
            await browser.close()
        with Session(site.engine) as db:
            steps = [(r.action, r.actor, r.target, r.outcome) for r in audit.rows(db, limit=200)
                     if r.action.startswith("registrations.")]
    # The command left through the outbox with this row, in one transaction (the hub's
    # relay has sent it on by now).
    assert steps == [("registrations.reject", ADMIN, str(held.confirmation_id), "ok")]
