"""The console's case list and dashboard as they work on a large store (the ``engine``
fixture: SQLite and PostgreSQL; their speed is measured by benchmarks/bench_console.py):
the list pages through its cases by keyset and reaches the last page, each case once; a
count past the cap shows "N+" instead of counting every case; a page cursor that is not
one is a CON-7 filter error, not a 500; the dashboard counts the registration answers in
the database by entity and by the Asia/Tokyo day and week."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.gateway.models import OutcomeRow
from hub.identity import LocalUsers, staff_identity
from hub.settings import StaffSettings
from pipelines.contract import archive as contract_list
from pipelines.contract.archive import count_contracts, page_cursor, search_contracts
from pipelines.contract.store import save_case
from schemas.contract import ContractStatus
from schemas.envelope import JST
from tests.support.staff import AT, case

PASSWORD = "correct horse battery staple"
CASES = 205
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=JST)
"""A Wednesday noon in Tokyo: the week began on Monday 11-30, the day at 00:00 JST."""


@pytest.fixture
def http(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    users = LocalUsers(tmp_path / "staff-users.json")
    users.add("shonin", PASSWORD, email="shonin@city.kawagoe.example.jp",
              entities=["kawagoe-city"], roles=["approver"])
    with Session(engine) as db, db.begin():
        for n in range(CASES):
            # pairs share their last update: the keyset must order ties by case id
            save_case(db, case(f"K-{n:03d}", "kawagoe-city", "a@city.kawagoe.example.jp",
                               ContractStatus.CONCLUDED).model_copy(
                update={"updated_at": AT + timedelta(minutes=n // 2)}))
        save_case(db, case("S-1", "saitama-pref", "x@pref.saitama.example.jp",
                           ContractStatus.CONCLUDED))
    identity = staff_identity(StaffSettings(users_file=users.path), tmp_path)
    app = FastAPI()
    app.include_router(console_router(engine, identity, ArchiveService(engine, ()),
                                      ConsoleConfig(tmp_path), clock=lambda: NOW))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        answer = client.post("/console/login", data={
            "csrf": token.group(1), "username": "shonin", "password": PASSWORD},
            follow_redirects=False)
        assert answer.status_code == 303, answer.text
        yield client


def _shown(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/console/cases/([^"]+)"', html)


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" id="next-page"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_list_pages_by_keyset_to_the_last_page_each_case_once(http: TestClient) -> None:
    first = http.get("/console/cases", params={"status": "concluded"})
    assert first.status_code == 200
    assert "検索結果 205 件" in first.text
    assert 'id="first-page"' not in first.text
    seen, pages, html = _shown(first.text), 1, first.text
    while (link := _next(html)) is not None:
        assert "status=concluded" in link  # the filters go along
        page = http.get(link)
        assert page.status_code == 200
        assert 'id="first-page"' in page.text
        assert "検索結果 205 件" in page.text
        html = page.text
        seen += _shown(html)
        pages += 1
    assert pages == 3
    assert len(_shown(html)) == 5  # the last page: no link to an empty one
    # newest first, ties by case id; every case of the entity once, no other entity's
    assert seen == [f"K-{n:03d}" for n in sorted(range(CASES), key=lambda n: (-(n // 2), n))]


def test_a_page_ending_exactly_at_the_last_case_offers_no_next_page(
        http: TestClient, engine: Engine) -> None:
    with Session(engine) as db:
        hundredth = search_contracts(db, entities={"kawagoe-city"}, limit=CASES - 100)[-1]
    cursor = page_cursor(hundredth.updated_at, hundredth.case_id)
    page = http.get("/console/cases", params={"after": cursor})
    assert len(_shown(page.text)) == 100
    assert _next(page.text) is None


def test_a_count_past_the_cap_shows_cap_plus(http: TestClient, engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Session(engine) as db:
        assert count_contracts(db, entities={"kawagoe-city"}, cap=50) == 51
        assert count_contracts(db, entities={"kawagoe-city"}, cap=500) == CASES
        assert count_contracts(db, entities={"saitama-pref"}, cap=50) == 1
    monkeypatch.setattr(contract_list, "COUNT_CAP", 150)
    page = http.get("/console/cases")
    assert "検索結果 150+ 件" in page.text
    assert "このページに 100 件" in page.text
    english = http.get("/console/cases", params={"lang": "en"})
    assert "150+ result(s)" in english.text


def test_a_cursor_that_is_not_one_is_a_con7_filter_error(http: TestClient) -> None:
    for bad in ("not-a-cursor", "bm90IGEgY3Vyc29y", page_cursor(AT, "K-001")[:-6]):
        page = http.get("/console/cases", params={"after": bad})
        assert page.status_code == 422, bad
        assert "CON-7" in page.text
        assert "after" in page.text


def _answer(n: int, kind: str, entity: str, at: datetime, rules: tuple[str, ...] = (),
            ) -> OutcomeRow:
    payload = {"procuring_entity": entity,
               "violations": [{"rule_id": r} for r in rules]}
    return OutcomeRow(request_id=f"q{n}", message_type=kind, procuring_entity=entity,
                      payload=payload, received_at=at.astimezone(UTC))


def test_the_dashboard_counts_answers_by_entity_and_tokyo_day_and_week(
        http: TestClient, engine: Engine) -> None:
    rejected, accepted = "registration.rejected", "registration.card-registered"
    with Session(engine) as db, db.begin():
        db.add_all([
            _answer(1, accepted, "kawagoe-city", NOW - timedelta(hours=2)),
            # 00:30 in Tokyo is the previous day in UTC: still today
            _answer(2, rejected, "kawagoe-city", NOW.replace(hour=0, minute=30), ("REG-3",)),
            # Tuesday 23:30 in Tokyo: this week, not today
            _answer(3, rejected, "kawagoe-city", NOW.replace(day=1, hour=23, minute=30),
                    ("REG-3", "REG-4")),
            _answer(4, "registration.needs-confirmation", "kawagoe-city",
                    NOW.replace(day=1, hour=9)),
            # Sunday before the week: not counted
            _answer(5, accepted, "kawagoe-city", NOW.replace(day=1) - timedelta(days=2)),
            # another entity's: not counted
            _answer(6, rejected, "saitama-pref", NOW - timedelta(hours=1), ("REG-1",)),
        ])
    html = http.get("/console/dashboard").text
    assert re.search(r"受付</th><td class=\"num\">1</td><td class=\"num\">1</td>", html)
    assert re.search(r"却下</th><td class=\"num\">1</td><td class=\"num\">2</td>", html)
    assert re.search(r"確認待ち</th><td class=\"num\">0</td><td class=\"num\">1</td>", html)
    assert re.search(r">REG-3</th><td class=\"num\">1</td><td class=\"num\">2</td>", html)
    assert re.search(r">REG-4</th><td class=\"num\">0</td><td class=\"num\">1</td>", html)
    assert ">REG-1<" not in html
