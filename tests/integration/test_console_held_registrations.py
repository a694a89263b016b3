"""The REG-11 queue's staff steps on the console's 利用者登録 page, over the real database
(SQLite and PostgreSQL): a 管理者 rejects or confirms a held registration; the page only
publishes the registration pipeline's command through the outbox (with its audit row), and
the pipeline, run by the hub's Processor on that very outbox record, answers it: a
RegistrationRejected naming REG-11 kept as the request's outcome and a mail to the
applicant's ICカード利用部署 address, or the card registered as asked with the usual
registration notice. A second click changes nothing and sends nothing again; a 承認者 may
not take either step (IAM-2, audited)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub import audit
from hub.console import ConsoleConfig, console_router
from hub.consumers import ConsumerSpec
from hub.contract.archive_api import ArchiveService
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.gateway.models import OutcomeRow
from hub.gateway.outcomes import outcome
from hub.gateway.wiring import OUTCOME_CONSUMER
from hub.identity import LocalUsers, staff_identity
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings, StaffSettings
from pipelines.registration.handlers import RegistrationHandlers
from pipelines.registration.models import PendingConfirmationRow
from pipelines.registration.queries import find_active_card
from schemas.mail import MailKind, MailRequested
from schemas.registration import (
    HeldRegistrationRejected,
    RegistrationConfirmed,
    RegistrationNeedsConfirmation,
)
from schemas.topics import Topics
from schemas.wire import decode
from tests.integration.test_registration_store import NOW_DT, handle, of, seed
from tests.unit.test_registration_rules import ISSUER, USER, card, command_of, qual, register

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"
ADMIN = "kanri@mlit.example.go.jp"
LATER = NOW_DT + timedelta(days=1)
"""When the staff acts: a day after the applicant's card authentication (PIN-2 is the
held request's, checked when it was held)."""
PIPELINE = RegistrationHandlers()
OB = OutboxRecord.__table__


@dataclass
class Site:
    http: TestClient
    engine: Engine
    held: str

    def login(self, username: str) -> None:
        self.http.cookies.clear()
        page = self.http.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        done = self.http.post("/console/login", data={
            "csrf": token.group(1), "username": username, "password": PASSWORD},
            follow_redirects=False)
        assert done.status_code == 303

    def csrf(self, path: str, **params: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.http.get(path, params=params).text)
        assert found
        return found.group(1)

    def outbox(self, topic: str) -> list[tuple[int, Any]]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OB).where(OB.c.topic == topic)
                                     .order_by(OB.c.id)))
        return [(r.id, r) for r in rows]

    def payloads(self, topic: str) -> list[Any]:
        return [decode(r.value, load_headers(r.headers)).payload for _, r in self.outbox(topic)]

    async def run(self, spec: ConsumerSpec, topic: str, after: int = 0) -> int:
        """The outbox records of ``topic`` after id ``after`` through the hub's Processor,
        as the consumer gets them from Kafka; the last id handled."""
        proc = Processor(spec, self.engine, RetrySettings(max_attempts=1, base_delay_s=1),
                         producer="test", clock=lambda: LATER)
        rows = [(i, r) for i, r in self.outbox(topic) if i > after]
        await proc.process([Delivery(topic=topic, partition=0, offset=i, key=r.key,
                                     value=r.value, headers=load_headers(r.headers))
                            for i, r in rows])
        return rows[-1][0] if rows else after

    async def pipeline(self) -> None:
        spec = ConsumerSpec("registration", (Topics.REGISTRATION_COMMANDS,),
                            handlers=PIPELINE.handlers, prepare=PIPELINE.prepare)
        await self.run(spec, Topics.REGISTRATION_COMMANDS.name)
        await self.run(OUTCOME_CONSUMER, Topics.REGISTRATION_EVENTS.name)

    def steps(self) -> list[tuple[str, str, str, str]]:
        with Session(self.engine) as db:
            return [(r.action, r.actor, r.target, r.outcome)
                    for r in reversed(audit.rows(db, limit=500))
                    if r.action.startswith("registrations.")]


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Iterator[Site]:
    seed(engine, qual("mlit"))
    mlit = {"entity": "mlit", "system": "e-contract"}
    handle(engine, command_of(register(**mlit)))
    held = of(handle(engine, command_of(register(**mlit, the_card=card("122"), rep=None))),
              RegistrationNeedsConfirmation)
    assert len(held) == 1
    users = LocalUsers(tmp_path / "staff-users.json")
    users.add("kanri", PASSWORD, email=ADMIN, entities=["mlit"], roles=["admin"])
    users.add("shonin", PASSWORD, email="shonin@mlit.example.go.jp", entities=["mlit"],
              roles=["approver"])
    identity = staff_identity(StaffSettings(users_file=users.path), tmp_path)
    app = FastAPI()
    app.include_router(console_router(engine, identity, ArchiveService(
        engine, (), clock=lambda: LATER), ConsoleConfig(tmp_path)))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield Site(http, engine, str(held[0].confirmation_id))


async def test_a_rejection_answers_the_applicant_once(site: Site) -> None:
    site.login("kanri")
    page = site.http.get("/console/registrations").text
    assert f'href="/console/registrations?held={site.held}&amp;step=reject"' in page
    confirm = site.http.get("/console/registrations", params={"held": site.held,
                                                              "step": "reject"})
    assert 'id="held-reject"' in confirm.text
    assert 'id="held-confirm"' not in confirm.text
    forged = site.http.post(f"/console/registrations/held/{site.held}/reject",
                            data={"csrf": "x"})
    assert forged.status_code == 403
    assert "IAM-5" in forged.text
    assert site.payloads(Topics.REGISTRATION_COMMANDS.name) == []
    token = site.csrf("/console/registrations")
    done = site.http.post(f"/console/registrations/held/{site.held}/reject",
                          data={"csrf": token})
    assert done.status_code == 200, done.text
    assert 'id="held-done"' in done.text
    (command,) = site.payloads(Topics.REGISTRATION_COMMANDS.name)
    assert isinstance(command, HeldRegistrationRejected)
    assert (str(command.confirmation_id), command.rejected_by) == (site.held, ADMIN)
    request_id = re.search(r"要求 ([0-9a-f-]{36})", done.text)
    assert request_id

    await site.pipeline()
    with Session(site.engine) as db:
        assert db.get(PendingConfirmationRow, site.held) is None  # the queue is empty
        assert find_active_card(db, ISSUER, "122", LATER) is None  # nothing registered
        answer = outcome(db, request_id.group(1))
    assert answer.status == "rejected"
    assert [v.rule_id for v in answer.violations] == ["REG-11"]
    assert "登録しないことにしました" in answer.violations[0].message_ja
    mails = [m for m in site.payloads(Topics.MAIL_REQUESTS.name)
             if isinstance(m, MailRequested) and m.kind is MailKind.GENERIC]
    assert len(mails) == 1
    assert mails[0].to == ("ic-card@example.jp",)  # the applicant's ICカード利用部署
    assert "REG-11" in mails[0].values["body_3"]
    # a second click: refused, no second command, mail or outcome
    again = site.http.post(f"/console/registrations/held/{site.held}/reject",
                           data={"csrf": token})
    assert again.status_code == 409
    assert "REG-11" in again.text
    confirm_after = site.http.post(f"/console/registrations/held/{site.held}/confirm",
                                   data={"csrf": token})
    assert confirm_after.status_code == 409
    await site.pipeline()
    assert len(site.payloads(Topics.REGISTRATION_COMMANDS.name)) == 1
    assert len([m for m in site.payloads(Topics.MAIL_REQUESTS.name)
                if m.kind is MailKind.GENERIC]) == 1
    with Session(site.engine) as db:
        assert len(db.exec(select(OutcomeRow).where(
            OutcomeRow.message_type == "registration.rejected")).all()) == 1
    assert [(a, o) for a, _, _, o in site.steps()] == [
        ("registrations.reject", "ok"), ("registrations.reject", "refused"),
        ("registrations.confirm", "refused")]
    assert site.steps()[0][1] == ADMIN


async def test_a_confirmation_by_the_city_registers_as_asked(site: Site) -> None:
    site.login("kanri")
    token = site.csrf("/console/registrations", held=site.held, step="confirm")
    done = site.http.post(f"/console/registrations/held/{site.held}/confirm",
                          data={"csrf": token})
    assert done.status_code == 200, done.text
    (command,) = site.payloads(Topics.REGISTRATION_COMMANDS.name)
    assert isinstance(command, RegistrationConfirmed)
    assert command.confirmed_by == ADMIN
    mails_before = len(site.payloads(Topics.MAIL_REQUESTS.name))
    await site.pipeline()
    with Session(site.engine) as db:
        assert db.get(PendingConfirmationRow, site.held) is None
        active = find_active_card(db, ISSUER, "122", LATER)
        assert active is not None
        assert active.user_id == USER
        done_rows = db.exec(select(OutcomeRow).where(
            OutcomeRow.message_type == "registration.card-registered")).all()
    assert len(done_rows) == 1
    notices = site.payloads(Topics.MAIL_REQUESTS.name)[mails_before:]
    assert [m.kind for m in notices] == [MailKind.REGISTRATION]
    again = site.http.post(f"/console/registrations/held/{site.held}/confirm",
                           data={"csrf": token})
    assert again.status_code == 409
    await site.pipeline()
    assert len(site.payloads(Topics.REGISTRATION_COMMANDS.name)) == 1
    assert len(site.payloads(Topics.MAIL_REQUESTS.name)) == mails_before + 1
    assert [(a, actor, o) for a, actor, _, o in site.steps()] == [
        ("registrations.confirm", ADMIN, "ok"), ("registrations.confirm", ADMIN, "refused")]


def test_an_approver_may_not_decide(site: Site) -> None:
    site.login("shonin")
    page = site.http.get("/console/registrations")
    assert f'id="held-{site.held}"' in page.text  # the queue is shown
    assert "step=confirm" not in page.text  # not its steps
    assert "step=reject" not in page.text
    token = site.csrf("/console/registrations")
    refused = site.http.post(f"/console/registrations/held/{site.held}/confirm",
                             data={"csrf": token})
    assert refused.status_code == 403
    assert "IAM-2" in refused.text
    assert site.payloads(Topics.REGISTRATION_COMMANDS.name) == []
    assert site.steps() == [("registrations.confirm", "shonin@mlit.example.go.jp",
                             site.held, "denied")]
