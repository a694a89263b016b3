"""The staff console's pages over the real database (the ``engine`` fixture: SQLite and
PostgreSQL), people of the local user store: log-in and its cookie, each person sees only
their entities' cases and only the steps their roles allow, another entity's case is the
403 page naming IAM-3, a form without its CSRF token changes nothing (IAM-5), and the
city's agreement from the case page goes through the archive service: the same command,
officer and audit row as the API's. The browser tests are in tests/e2e/test_console_*."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.db import OutboxRecord
from hub.gateway.models import OutcomeRow
from hub.identity import LocalUsers, staff_identity
from hub.outbox import load_headers
from hub.settings import StaffSettings
from pipelines.contract.store import save_case
from schemas.contract import CityAgreed, ContractStatus
from schemas.envelope import utc_now
from schemas.topics import Topics
from schemas.wire import decode
from tests.support.staff import AT, case

PASSWORD = "correct horse battery staple"
APPROVER = "shonin@city.kawagoe.example.jp"
OFFICER = "keiyaku@city.kawagoe.example.jp"
OB = OutboxRecord.__table__


@dataclass
class Console:
    http: TestClient
    engine: Engine

    def login(self, username: str, password: str = PASSWORD) -> None:
        page = self.http.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, page.text
        answer = self.http.post("/console/login", data={
            "csrf": token.group(1), "username": username, "password": password,
            "next": "/console/dashboard"}, follow_redirects=False)
        assert answer.status_code == 303, answer.text

    def csrf(self, path: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.http.get(path).text)
        assert found
        return found.group(1)

    def commands(self) -> list[object]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OB).where(
                OB.c.topic == Topics.CONTRACT_COMMANDS.name).order_by(OB.c.id)))
        return [decode(r.value, load_headers(r.headers)).payload for r in rows]

    def audit_rows(self) -> list[audit.AuditRecord]:
        with Session(self.engine) as db:
            return list(reversed(audit.rows(db, limit=1000)))


def _violation(rule: str, ja: str) -> dict[str, str]:
    return {"rule_id": rule, "message_ja": ja, "message_en": f"{rule} in English.",
            "next_step_ja": "窓口に連絡してください。", "next_step_en": "Call the desk."}


@pytest.fixture
def console(engine: Engine, tmp_path: Path) -> Iterator[Console]:
    users = LocalUsers(tmp_path / "staff-users.json")
    users.add("shonin", PASSWORD, email=APPROVER, entities=["kawagoe-city"],
              roles=["approver"], name="承認 太郎")
    users.add("keiyaku", PASSWORD, email=OFFICER, entities=["kawagoe-city"],
              roles=["contract-officer"])
    users.add("kanri", PASSWORD, email="kanri@city.kawagoe.example.jp",
              entities=["kawagoe-city"], roles=["admin"])
    now = utc_now()
    with Session(engine) as db, db.begin():
        save_case(db, case("K-1", "kawagoe-city", APPROVER, ContractStatus.CONTRACTOR_SIGNED)
                  .model_copy(update={"contractor_agreed_at": AT}))
        save_case(db, case("K-2", "kawagoe-city", APPROVER, ContractStatus.APPLIED)
                  .model_copy(update={"contractor_name": "北東建設株式会社"}))
        save_case(db, case("S-1", "saitama-pref", "x@pref.saitama.example.jp",
                           ContractStatus.CONTRACTOR_SIGNED))
        for n, (kind, entity, payload) in enumerate((
                ("registration.card-registered", "kawagoe-city", {}),
                ("registration.rejected", "kawagoe-city", {"user_id": "U0042", "violations": [
                    _violation("REG-3", "商号が資格審査情報と一致しません。"),
                    _violation("REG-4", "パスワードの有効期限が切れています。")]}),
                ("registration.rejected", "saitama-pref", {"violations": [{"rule_id": "REG-1"}]}),
                ("registration.needs-confirmation", "kawagoe-city", {}))):
            db.add(OutcomeRow(request_id=f"r{n}", message_type=kind, received_at=now
                              - timedelta(minutes=n), procuring_entity=entity,
                              payload={"procuring_entity": entity, **payload}))
    identity = staff_identity(StaffSettings(users_file=users.path), tmp_path)
    archive = ArchiveService(engine, ())
    app = FastAPI()
    app.include_router(console_router(engine, identity, archive, ConsoleConfig(tmp_path)))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield Console(http, engine)


def test_no_session_leads_to_the_login_page_and_a_wrong_password_says_iam1(
        console: Console) -> None:
    answer = console.http.get("/console/cases/K-1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Fcases%2FK-1"
    page = console.http.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    wrong = console.http.post("/console/login", data={
        "csrf": token.group(1), "username": "shonin", "password": "not it"})
    assert wrong.status_code == 401
    assert "IAM-1" in wrong.text
    assert "hub_console=" not in wrong.headers.get("set-cookie", "")
    forged = console.http.post("/console/login", data={
        "csrf": "0" * 40, "username": "shonin", "password": PASSWORD},
        follow_redirects=False)
    assert "hub_console=" not in forged.headers.get("set-cookie", "")


def test_login_sets_an_httponly_samesite_cookie_and_the_dashboard_counts_own_entity(
        console: Console) -> None:
    console.login("shonin")
    page = console.http.get("/console/dashboard")
    assert page.status_code == 200
    cookie = next(c for c in console.http.cookies.jar if c.name == "hub_console")
    assert cookie.path == "/console"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert (cookie.get_nonstandard_attr("SameSite") or "").lower() == "lax"
    assert not cookie.secure  # no TLS here; ConsoleConfig(secure=True) with TLS
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # none at all
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert "承認 太郎" in html
    # kawagoe-city: one accepted, one rejected (REG-3, REG-4), one needing confirmation;
    # saitama-pref's REG-1 rejection is not counted
    assert re.search(r"受付</th><td class=\"num\">1</td>", html)
    assert re.search(r"却下</th><td class=\"num\">1</td>", html)
    assert ">REG-3<" in html
    assert ">REG-4<" in html
    assert ">REG-1<" not in html
    statuses = re.search(r'id="cases-by-status".*?</table>', html, re.S)
    assert statuses
    assert re.search(r"受注者署名済み（発注者の合意待ち）</a></th><td class=\"num\">1<",
                     statuses.group(0))
    assert 'id="h-dead"' not in html  # an approver is not an administrator
    console.http.cookies.clear()
    console.login("kanri")
    admin = console.http.get("/console/dashboard?lang=en").text
    assert "Dead letters" in admin
    assert "Consumer lag" in admin
    assert "Connectors" in admin


def test_search_by_counterparty_shows_only_own_entity(console: Console) -> None:
    console.login("shonin")
    found = console.http.get("/console/cases", params={"counterparty": "デモ建設"}).text
    assert 'href="/console/cases/K-1"' in found
    assert "S-1" not in found
    assert "K-2" not in found
    assert "1/2" in found  # agreed n/m (CON-6)
    north = console.http.get("/console/cases", params={"counterparty": "北東建設"}).text
    assert "K-2" in north
    assert "K-1" not in north
    bad = console.http.get("/console/cases", params={"amount_min": "-5"})
    assert bad.status_code == 422
    assert "CON-7" in bad.text


def test_another_entitys_case_is_the_403_page_and_audited(console: Console) -> None:
    console.login("shonin")
    page = console.http.get("/console/cases/S-1")
    assert page.status_code == 403
    assert "IAM-3" in page.text
    assert "saitama-pref" in page.text
    assert "見ることも操作することもできません" in page.text
    denied = [r for r in console.audit_rows() if r.target == "S-1"]
    assert [(r.actor, r.outcome, r.detail) for r in denied] == [(APPROVER, "denied", "entity")]
    agree = console.http.post("/console/cases/S-1/city-agreement",
                              data={"csrf": console.csrf("/console/cases/K-1")})
    assert agree.status_code == 403
    assert "IAM-3" in agree.text
    assert console.commands() == []


def test_an_approver_agrees_as_the_city_from_the_case_page(console: Console) -> None:
    console.login("shonin")
    page = console.http.get("/console/cases/K-1")
    assert page.status_code == 200
    assert 'id="agree"' in page.text
    missing = console.http.post("/console/cases/K-1/city-agreement", data={})
    assert missing.status_code == 403
    assert "IAM-5" in missing.text
    assert console.commands() == []
    agreed = console.http.post("/console/cases/K-1/city-agreement",
                               data={"csrf": console.csrf("/console/cases/K-1")},
                               follow_redirects=False)
    assert agreed.status_code == 303
    assert agreed.headers["location"].startswith("/console/cases/K-1?accepted=")
    (command,) = console.commands()
    assert isinstance(command, CityAgreed)
    assert command.by == APPROVER  # the session's person, as the API's token's
    steps = [(r.actor, r.role, r.entity, r.action, r.outcome) for r in console.audit_rows()
             if r.action == "contracts.city-agreement"]
    assert steps == [(APPROVER, "approver", "kawagoe-city", "contracts.city-agreement", "ok")]
    shown = console.http.get(agreed.headers["location"]).text
    assert "発注者の合意を受け付けました" in shown
    assert "staff: contracts.city-agreement" in shown  # the timeline shows the step


def test_a_contract_officer_is_not_offered_the_agreement_and_cannot_post_it(
        console: Console) -> None:
    console.login("keiyaku")
    page = console.http.get("/console/cases/K-1")
    assert page.status_code == 200
    assert 'id="agree"' not in page.text
    agree = console.http.post("/console/cases/K-1/city-agreement",
                              data={"csrf": console.csrf("/console/cases/K-1")})
    assert agree.status_code == 403
    assert "IAM-2" in agree.text
    assert "承認者" in agree.text
    assert console.commands() == []


def test_english_is_one_switch_away_and_kept(console: Console) -> None:
    console.login("shonin")
    page = console.http.get("/console/cases?lang=en")
    assert '<html lang="en">' in page.text
    assert "Search cases" in page.text
    again = console.http.get("/console/dashboard")
    assert '<html lang="en">' in again.text
    assert "Cases by status" in again.text
    back = console.http.get("/console/dashboard?lang=ja")
    assert '<html lang="ja">' in back.text


def test_the_registrations_page_shows_decisions_with_rule_ids_and_both_languages(
        console: Console) -> None:
    console.login("keiyaku")
    page = console.http.get("/console/registrations")
    assert page.status_code == 200
    decisions = page.text.split('id="decisions"')[1]
    assert "<strong>REG-3</strong>" in decisions
    assert "商号が資格審査情報と一致しません。" in decisions
    assert "REG-4 in English." in decisions
    assert "U0042" in decisions
    assert "REG-1<" not in decisions  # saitama-pref's
    assert "申請者本人が IC カードで" in page.text  # who confirms REG-11, and where
