"""The console's コネクタ page in a real browser (Debian's chromium driven by Playwright)
against a hub in this process with the real Kafka broker and PostgreSQL
(tests/support/tally_hub.py): a 管理者 reaches the page from the menu, pauses the
connector after the confirmation step, a message published meanwhile waits (the page shows
it as lag, nothing handled), and after resume it is handled once. axe-core finds no
serious or critical violation on the page, its confirmation step, in Japanese and in
English. Screenshots as tests/e2e/test_console_browser.py takes them (docs/console/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.test_console_browser import (
    VIEWPORT,
    _accessible,
    _browser,
    _screenshot,
    _shots,
)
from tests.support.hubproc import wait_for
from tests.support.kafka import publish
from tests.support.tally_hub import PASSWORD, entry, tally_hub

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def _lag(page: Page) -> int:
    await page.reload()
    return int((await page.locator("#c-tally td.lag").inner_text()).strip())


async def test_an_administrator_pauses_and_resumes_a_connector_in_the_browser(
        kafka_bootstrap: str, pg_url: str, unique: str, tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    async with tally_hub(kafka_bootstrap, pg_url, unique, tmp_path) as site, \
            async_playwright() as play:
        await publish(kafka_bootstrap, site.topic.name, [entry(0)])
        await wait_for(lambda: site.tally.handled == [0], what="entry 0 handled")
        browser = await _browser(play)
        try:
            page = await browser.new_page(viewport=VIEWPORT, locale="ja-JP", bypass_csp=True)
            await page.goto(site.url + "/console/login")
            await page.fill("#username", "kanri")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(re.compile(r"/console/dashboard$"))
            await page.click("nav a[href='/console/connectors']")
            await expect(page.locator("#c-tally td.state")).to_have_text("RUNNING")
            await _accessible(page, "connectors")
            await _screenshot(page, shots, "connectors")
            await page.click("#pause-tally")
            await expect(page.locator("#confirm")).to_be_visible()
            await _accessible(page, "connectors, confirm the pause")
            await _screenshot(page, shots, "connector-pause-confirm")
            await page.click("#pause")
            await expect(page.locator("#steered")).to_be_visible()
            await expect(page.locator("#c-tally td.state")).to_have_text("PAUSED")
            await publish(kafka_bootstrap, site.topic.name, [entry(1)])
            await wait_for(lambda: _is(page, 1), what="entry 1 waiting as lag")
            assert site.tally.handled == [0]
            await page.goto(site.url + "/console/connectors?lang=en")
            await _accessible(page, "connectors (en), paused")
            await page.click("#resume-tally")
            await page.click("#resume")
            await expect(page.locator("#c-tally td.state")).to_have_text("RUNNING")
            await wait_for(lambda: len(site.tally.handled) >= 2, what="entry 1 handled")
            await wait_for(lambda: _is(page, 0), what="lag 0")
            assert site.tally.handled == [0, 1]
        finally:
            await browser.close()


async def _is(page: Page, lag: int) -> bool:
    return await _lag(page) == lag
