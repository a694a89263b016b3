"""The console's コネクタ page against a hub in this process with the real Kafka broker and
the database (SQLite, then PostgreSQL): an administrator sees each connector's state,
pauses one after a confirmation step (a message published while it is paused is not
handled and waits as consumer lag), resumes it (the message is handled once), and both
steps are rows of the audit trail naming the person, as the control API writes them. A
承認者 is neither offered the page nor allowed to steer (403 IAM-2, audited)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from hub import audit
from tests.support.hubproc import wait_for
from tests.support.kafka import publish
from tests.support.tally_hub import ADMIN, APPROVER, PASSWORD, Site, entry, tally_hub

pytestmark = [pytest.mark.kafka]


@pytest.fixture
async def site(kafka_bootstrap: str, db_url: str, unique: str,
               tmp_path: Path) -> AsyncIterator[Site]:
    async with tally_hub(kafka_bootstrap, db_url, unique, tmp_path) as running:
        yield running


async def _login(http: httpx.AsyncClient, username: str) -> None:
    page = await http.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    done = await http.post("/console/login", data={
        "csrf": token.group(1), "username": username, "password": PASSWORD})
    assert done.status_code == 303


def _csrf(text: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', text)
    assert token
    return token.group(1)


def _row(text: str, name: str) -> str:
    return text.split(f'id="c-{name}"')[1].split("</tr>", maxsplit=1)[0]


def _lag(text: str, name: str) -> int:
    found = re.search(r'<td class="num lag">(\d+)</td>', _row(text, name))
    assert found
    return int(found.group(1))


def _steps(engine: Any) -> list[tuple[str, str, str, str]]:
    """The steering rows of the audit trail, oldest first."""
    with Session(engine) as db:
        return [(r.action, r.actor, r.target, r.outcome)
                for r in reversed(audit.rows(db, limit=200))
                if r.action in ("connectors.pause", "connectors.resume")]


async def test_pause_from_the_page_holds_the_work_and_resume_handles_it_once(
        site: Site, kafka_bootstrap: str) -> None:
    async with httpx.AsyncClient(base_url=site.url, timeout=60) as http:
        await _login(http, "kanri")
        dashboard = await http.get("/console/dashboard")
        assert 'href="/console/connectors"' in dashboard.text
        page = await http.get("/console/connectors")
        assert page.status_code == 200, page.text
        row = _row(page.text, "tally")
        assert '<td class="state">RUNNING</td>' in row
        assert "closed" in row  # the circuit
        assert 'id="pause-tally"' in row
        await publish(kafka_bootstrap, site.topic.name, [entry(0)])
        await wait_for(lambda: site.tally.handled == [0], what="entry 0 handled")

        confirm = await http.get("/console/connectors",
                                 params={"confirm": "pause", "name": "tally"})
        assert 'id="confirm"' in confirm.text
        assert 'action="/console/connectors/tally/pause"' in confirm.text
        forged = await http.post("/console/connectors/tally/pause", data={"csrf": "x"})
        assert forged.status_code == 403
        assert "IAM-5" in forged.text
        assert not site.hub.runtimes[0].paused
        paused = await http.post("/console/connectors/tally/pause",
                                 data={"csrf": _csrf(confirm.text)})
        assert paused.status_code == 200, paused.text
        assert 'id="steered"' in paused.text
        assert '<td class="state">PAUSED</td>' in _row(paused.text, "tally")
        assert 'id="resume-tally"' in _row(paused.text, "tally")

        await publish(kafka_bootstrap, site.topic.name, [entry(1)])

        async def waiting() -> bool:
            return _lag((await http.get("/console/connectors")).text, "tally") == 1

        await wait_for(waiting, what="entry 1 waiting as lag on the page")
        assert site.tally.handled == [0]  # published while paused: not handled

        resumed = await http.post("/console/connectors/tally/resume",
                                  data={"csrf": _csrf(paused.text)})
        assert resumed.status_code == 200, resumed.text
        assert '<td class="state">RUNNING</td>' in _row(resumed.text, "tally")
        await wait_for(lambda: len(site.tally.handled) >= 2, what="entry 1 handled")

        async def caught_up() -> bool:
            return _lag((await http.get("/console/connectors")).text, "tally") == 0

        await wait_for(caught_up, what="lag 0")
        assert site.tally.handled == [0, 1]  # once
    assert _steps(site.engine) == [("connectors.pause", ADMIN, "tally", "ok"),
                                   ("connectors.resume", ADMIN, "tally", "ok")]


async def test_an_approver_neither_sees_nor_steers(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url, timeout=60) as http:
        await _login(http, "shonin")
        dashboard = await http.get("/console/dashboard")
        assert 'href="/console/connectors"' not in dashboard.text
        refused = await http.get("/console/connectors")
        assert refused.status_code == 403
        assert "IAM-2" in refused.text
        assert "pause-tally" not in refused.text
        token = _csrf(dashboard.text)  # a valid token of the session: the role still refuses
        steered = await http.post("/console/connectors/tally/pause", data={"csrf": token})
        assert steered.status_code == 403
        assert "IAM-2" in steered.text
    assert not site.hub.runtimes[0].paused
    with Session(site.engine) as db:
        denied = [(r.action, r.actor, r.outcome) for r in audit.rows(db, limit=200)
                  if r.outcome == "denied"]
    assert ("connectors.list", APPROVER, "denied") in denied
    assert ("connectors.pause", APPROVER, "denied") in denied
    assert _steps(site.engine) == [("connectors.pause", APPROVER, "tally", "denied")]
