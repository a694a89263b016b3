"""利用者登録・変更・ICカード更新 end to end: real Kafka, the hub, the database, real SMTP.

The hub runs in this process with the registration consumer (``registration_consumer()``)
and the mail connector's consumer, against a SQLite file and PostgreSQL, and sends its
notices to a real SMTP server (aiosmtpd) on loopback. Commands go in on the real
``proc.registration.commands``; the test reads only what its own commands caused.

- register → change → renew (REG-10, CHG-4, RNW-9 mails in Japanese MIME, NTF-2), each
  reaching kawagoe-city by the nightly batch (REG-9, CHG-3, RNW-8); afterwards the old
  card is refused everywhere (RNW-7): no active card, and a command with it is rejected.
  The nightly batch is the propagation job ``hub run`` schedules, run with its clock
  just before and just after the batch time.
- rule-breaking commands → RegistrationRejected naming the rule, nothing changed, no
  mail; records that are not canonical messages → the dead-letter topic; the consumer
  keeps running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.mail import MailConnector, MailSettings
from connectors.mail.effects import effects as mail_effects
from connectors.mail.peer import SmtpPeer
from connectors.mail.templates import NTF2_NOTICE
from hub import bootstrap
from hub.bootstrap import propagation_job, registration_consumer
from hub.consumers import ConsumerSpec
from hub.dlq import read_dead_letters
from hub.runtime import Hub
from pipelines.registration.models import (
    CardRow,
    ContractorRow,
    PendingPropagationRow,
    QualificationRow,
)
from pipelines.registration.propagation import PropagationReport
from pipelines.registration.queries import find_active_card
from schemas.envelope import JST, Envelope
from schemas.mail import MailRequested, MailSent
from schemas.registration import (
    CardRegistered,
    CardRenewed,
    CardRevoked,
    ContactChanged,
    Domain,
    PropagationKind,
    PropagationScheduled,
    RegistrationRejected,
)
from schemas.registry import Payload
from schemas.topics import Topics
from schemas.wire import encode
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, publish, publish_raw
from tests.support.registration import (
    ADDRESS,
    ISSUER,
    TRADE_NAME,
    EventTap,
    card,
    change,
    command,
    last_service_time,
    qualification,
    register,
    renew,
    skip_history,
    user_id_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp, pytest.mark.e2e]

TOPICS = (Topics.REGISTRATION_COMMANDS, Topics.QUALIFICATION_UPDATES,
          Topics.REGISTRATION_EVENTS, Topics.MAIL_REQUESTS, Topics.MAIL_EVENTS)
JOINT = ("saitama-pref", "kawagoe-city")
"""One joint system in the default policy: what one entity registers reaches the other."""


@dataclass
class Running:
    hub: Hub
    tap: EventTap
    smtp: SmtpPeer
    engine: Engine
    bootstrap: str
    unique: str

    async def send(self, *envelopes: Envelope[Any]) -> None:
        await publish(self.bootstrap, Topics.REGISTRATION_COMMANDS.name, envelopes)

    def ours(self, envelope: Envelope[Any]) -> bool:
        """Made by this test's hub (another hub on the shared topics may answer us too)."""
        return envelope.producer == self.hub.settings.producer_name

    async def outcome(self, cause: Envelope[Any], count: int) -> list[Payload]:
        """The events ``cause`` produced on proc.registration.events (at least ``count``)."""
        found = await self.tap.wait(
            lambda e: e.causation_id == cause.message_id and self.ours(e)
            and e.type.startswith("registration."),
            count, what=f"{count} events of {cause.type}")
        await self.tap.settle(0.3)
        found = [e for e in self.tap.caused_by(cause)
                 if self.ours(e) and e.type.startswith("registration.")]
        assert len(found) == count, [e.type for e in found]
        return [e.payload for e in found]

    async def mail_to(self, address: str, count: int = 1) -> list[EmailMessage]:
        def arrived() -> bool:
            return len(self.received(address)) >= count

        await wait_for(arrived, timeout_s=30, what=f"{count} mail(s) to {address}")
        return self.received(address)

    def received(self, address: str) -> list[EmailMessage]:
        """Distinct mails to ``address``, by Message-ID, in order of arrival.

        Another hub reading the shared topics may answer our commands too; its mail has
        the same Message-ID (derived from the request's mail_id) and counts once.
        """
        out: dict[str, EmailMessage] = {}
        for m in self.smtp.received:
            if address in m.rcpt_tos:
                out.setdefault(m.message_id, m.message)
        return list(out.values())


@pytest.fixture
async def running(kafka_bootstrap: str, db_url: str, engine: Engine, unique: str,
                  tmp_path: Path) -> AsyncIterator[Running]:
    await create_topics(kafka_bootstrap, TOPICS)
    smtp = SmtpPeer()
    smtp.start()
    mailer = MailConnector(MailSettings(host=smtp.host, port=smtp.port, timeout_s=5.0,
                                        documents_dir=tmp_path / "documents"))
    consumers = [registration_consumer(),
                 ConsumerSpec("connector.mail", (Topics.MAIL_REQUESTS,),
                              handlers=mail_effects(mailer))]
    settings = settings_for(kafka_bootstrap, db_url, unique, producer_name=f"hub-{unique}")
    await skip_history(kafka_bootstrap,
                       [f"{settings.kafka.group_prefix}.{c.name}" for c in consumers],
                       [t.name for t in TOPICS])
    tap = EventTap(kafka_bootstrap, [Topics.REGISTRATION_EVENTS.name,
                                     Topics.MAIL_REQUESTS.name, Topics.MAIL_EVENTS.name])
    await tap.start()
    hub = Hub(settings, consumers, engine=engine, serve_http=False)
    await hub.start()
    try:
        yield Running(hub, tap, smtp, engine, kafka_bootstrap, unique)
    finally:
        await hub.stop()
        await tap.stop()
        await mailer.aclose()
        smtp.stop()


async def qualify(run: Running, user_id: str, entities: tuple[str, ...] = JOINT) -> datetime:
    """資格審査情報 for ``user_id`` through proc.qualification.updates; when the person acts."""
    acted = last_service_time("saitama-pref")
    await publish(run.bootstrap, Topics.QUALIFICATION_UPDATES.name,
                  [command(qualification(e, user_id), acted_at=acted) for e in entities])

    def stored() -> bool:
        with Session(run.engine) as s:
            return len(s.exec(select(QualificationRow).where(
                QualificationRow.user_id == user_id)).all()) == len(entities)

    await wait_for(stored, what="the qualification rows")
    return acted


async def nightly_batch(run: Running, at: datetime,
                       monkeypatch: pytest.MonkeyPatch) -> PropagationReport:
    """The propagation job ``hub run`` schedules (REG-9, CHG-3, RNW-8), its clock at ``at``."""
    monkeypatch.setattr(bootstrap, "utc_now", lambda: at)
    report: PropagationReport = await propagation_job(3600).run(run.engine)
    run.hub.relay.wake()
    return report


def propagation_status(engine: Engine, scheduled: PropagationScheduled) -> str | None:
    with Session(engine) as session:
        row = session.get(PendingPropagationRow, str(scheduled.propagation_id))
        return None if row is None else row.status


async def propagate_due(run: Running, scheduled: PropagationScheduled,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Not before the batch time; once past it, this item is applied, once."""
    early = await nightly_batch(run, scheduled.due_at - timedelta(minutes=1), monkeypatch)
    assert early.failed == 0
    assert propagation_status(run.engine, scheduled) == "pending"
    report = await nightly_batch(run, scheduled.due_at + timedelta(minutes=1), monkeypatch)
    assert report.failed == 0
    assert report.done >= 1, report.skipped_notes
    assert propagation_status(run.engine, scheduled) == "done"
    again = await nightly_batch(run, scheduled.due_at + timedelta(minutes=2), monkeypatch)
    assert (again.done, again.failed) == (0, 0)  # idempotent: nothing twice


async def propagated(run: Running, kind: type[Payload], user_id: str,
                     count: int = 1) -> list[Any]:
    found = await run.tap.wait(
        lambda e: isinstance(e.payload, kind) and getattr(e.payload, "user_id", None) == user_id
        and getattr(e.payload, "propagated_from", None) == "saitama-pref", count,
        what=f"{kind.__name__} propagated to kawagoe-city")
    return [e.payload for e in found]


def of(events: list[Payload], kind: type[Payload]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def assert_notice(message: EmailMessage, subject: str, *lines: str) -> None:
    """Japanese MIME as a person's mail reader sees it (RFC 2047 subject, UTF-8 body)."""
    assert message["Subject"] == subject
    assert message["Auto-Submitted"] == "auto-generated"  # NTF-2: machine-sent
    body_part = message.get_body(("plain",))
    assert body_part is not None
    assert body_part.get_content_charset() == "utf-8"
    assert body_part["Content-Transfer-Encoding"] == "base64"
    body = body_part.get_content().replace("\r\n", "\n")
    for line in lines:
        assert line in body, (line, body)
    assert NTF2_NOTICE in body


def raw_subject(run: Running, address: str) -> bytes:
    mail = next(m for m in run.smtp.received if address in m.rcpt_tos)
    return next(line for line in mail.content.splitlines() if line.startswith(b"Subject:"))


def active(engine: Engine, serial: str, entity: str | None = None) -> Any:
    with Session(engine) as session:
        return find_active_card(session, ISSUER, serial, datetime.now(JST), entity=entity)


async def test_register_change_renew_propagate_and_the_old_card_is_refused(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    run, unique = running, running.unique
    user = user_id_for(unique)
    acted = await qualify(run, user)
    old_serial, new_serial = f"{int(unique, 16)}1", f"{int(unique, 16)}2"
    first_mail, new_mail = f"ic-{unique}@example.jp", f"new-{unique}@example.jp"

    # 利用者登録 at Saitama (REG-10), next day at Kawagoe (REG-9).
    reg = command(register(user, card(old_serial), first_mail), acted_at=acted)
    await run.send(reg)
    events = await run.outcome(reg, 2)
    (registered,) = of(events, CardRegistered)
    (scheduled,) = of(events, PropagationScheduled)
    assert registered.first_registration
    assert len(registered.company_id) == 16
    assert (scheduled.kind, scheduled.target_entity, scheduled.immediate) == (
        PropagationKind.REGISTRATION, "kawagoe-city", False)
    assert scheduled.due_at > datetime.now(JST)
    (notice,) = await run.mail_to(first_mail)
    assert_notice(notice, "利用者登録のお知らせ", "調達機関 : 埼玉県",
                  f"企業名称 : {TRADE_NAME}", "連絡先氏名 : 日立 次郎", f"連絡先住所 : {ADDRESS}")
    assert raw_subject(run, first_mail).lower().startswith(b"subject: =?utf-8?")
    (request,) = [e for e in run.tap.caused_by(reg)
                  if isinstance(e.payload, MailRequested) and run.ours(e)]
    assert request.payload.values["company_id"] == registered.company_id
    await run.tap.wait(lambda e: isinstance(e.payload, MailSent)
                       and e.causation_id == request.message_id, what="MailSent")
    assert active(run.engine, old_serial, "saitama-pref") is not None
    assert active(run.engine, old_serial, "kawagoe-city") is None  # not before the batch

    await propagate_due(run, scheduled, monkeypatch)
    (at_kawagoe,) = await propagated(run, CardRegistered, user)
    assert at_kawagoe.procuring_entity == "kawagoe-city"
    assert at_kawagoe.company_id == registered.company_id
    assert active(run.engine, old_serial, "kawagoe-city") is not None

    # 利用者変更 with "apply to the other entities" (CHG-3, CHG-4).
    chg = command(change(user, card(old_serial), new_mail, to_others=True), acted_at=acted)
    await run.send(chg)
    events = await run.outcome(chg, 2)
    (changed,) = of(events, ContactChanged)
    assert changed.card_department_contact is not None
    assert changed.card_department_contact.email == new_mail
    (notice,) = await run.mail_to(new_mail)
    assert_notice(notice, "利用者変更のお知らせ", "調達機関 : 埼玉県")
    await propagate_due(run, of(events, PropagationScheduled)[0], monkeypatch)
    (changed_there,) = await propagated(run, ContactChanged, user)
    assert changed_there.procuring_entity == "kawagoe-city"

    # ICカード更新: old card first, then the new one (RNW-6); contacts inherited (RNW-7).
    rnw = command(renew(user, card(old_serial, authenticated=timedelta(minutes=2)),
                        card(new_serial, issued_days_ago=10), to_others=True), acted_at=acted)
    await run.send(rnw)
    events = await run.outcome(rnw, 3)
    assert {type(e) for e in events} == {CardRenewed, CardRevoked, PropagationScheduled}
    notices = await run.mail_to(new_mail, 2)
    assert_notice(notices[1], "ICカード更新のお知らせ", f"ICカードシリアル番号 : {new_serial}",
                  "更新前のICカードは、今後ご利用いただけません。")
    await propagate_due(run, of(events, PropagationScheduled)[0], monkeypatch)
    await propagated(run, CardRenewed, user)
    await run.tap.wait(lambda e: isinstance(e.payload, CardRevoked)
                       and e.payload.procuring_entity == "kawagoe-city"
                       and e.payload.user_id == user, what="CardRevoked at kawagoe-city")

    # The old card is refused everywhere (RNW-7); the new one acts at both entities.
    assert active(run.engine, old_serial) is None
    renewed = active(run.engine, new_serial)
    assert renewed is not None
    assert renewed.registered_at == (("kawagoe-city", Domain.WORKS),
                                     ("saitama-pref", Domain.WORKS))
    again = command(change(user, card(old_serial), f"again-{unique}@example.jp"),
                    acted_at=acted)
    twice = command(renew(user, card(old_serial, authenticated=timedelta(minutes=2)),
                          card(f"{int(unique, 16)}9", issued_days_ago=5)), acted_at=acted)
    await run.send(again, twice)
    for cmd, rule in ((again, "RNW-7"), (twice, "RNW-7")):
        (refused,) = await run.outcome(cmd, 1)
        assert isinstance(refused, RegistrationRejected)
        assert [v.rule_id for v in refused.violations] == [rule]
        assert all(v.message_ja and v.next_step_ja and v.next_step_en
                   for v in refused.violations)
    assert len(run.received(new_mail)) == 2  # no mail for a refusal
    assert active(run.engine, new_serial) == renewed
    assert run.received(f"again-{unique}@example.jp") == []


def rows(engine: Engine, user_ids: tuple[str, ...]) -> dict[str, int]:
    """Cards and contractors of these user IDs (other tests' traffic may reach this hub)."""
    tables: tuple[sa.Table, ...] = (CardRow.__table__, ContractorRow.__table__)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {t.name: int(conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.user_id.in_(user_ids)))
            .scalar() or 0) for t in tables}


async def test_bad_commands_are_rejected_by_rule_and_poison_is_dead_lettered(
        running: Running) -> None:
    run, unique = running, running.unique
    user = user_id_for(unique)
    acted = await qualify(run, user, ("saitama-pref",))
    base = int(unique, 16)
    typo = command(register(user, card(f"{base}3"), f"typo-{unique}@example.jp",
                            confirmation=f"tpyo-{unique}@example.jp"), acted_at=acted)
    stranger = command(register(user_id_for(unique, 7), card(f"{base}4"),
                                f"who-{unique}@example.jp"), acted_at=acted)
    await run.send(typo, stranger)
    (typo_no,) = await run.outcome(typo, 1)
    (stranger_no,) = await run.outcome(stranger, 1)
    assert isinstance(typo_no, RegistrationRejected)
    assert isinstance(stranger_no, RegistrationRejected)
    for rejected, rule in ((typo_no, "REG-7"), (stranger_no, "REG-3")):
        assert rule in [v.rule_id for v in rejected.violations], rejected.violations
        assert all(v.message_ja and v.message_en and v.next_step_ja and v.next_step_en
                   for v in rejected.violations)
    assert [v.field for v in typo_no.violations if v.rule_id == "REG-7"] == [
        "card_department_contact.email_confirmation"]
    users = (user, user_id_for(unique, 7))
    assert rows(run.engine, users) == {"reg_card": 0, "reg_contractor": 0}

    # Not canonical messages: not JSON, and an envelope whose payload breaks its schema.
    good = command(register(user, card(f"{base}5"), f"ok-{unique}@example.jp"), acted_at=acted)
    _, value, headers = encode(good)
    broken = orjson.loads(value)
    broken["payload"]["card_department_contact"]["phone"] = "０４４－８１２－７３５８"
    await publish_raw(run.bootstrap, Topics.REGISTRATION_COMMANDS.name, [
        (f"{unique}-a".encode(), b"<registration/>", []),
        (f"{unique}-b".encode(), orjson.dumps(broken), headers),
    ])
    await run.send(good)  # behind the poison: the consumer is still running
    events = await run.outcome(good, 1)
    assert of(events, CardRegistered)
    await run.mail_to(f"ok-{unique}@example.jp")
    mine = [d for d in await read_dead_letters(run.hub.settings,
                                               [Topics.REGISTRATION_COMMANDS.dlq])
            if (d.key or b"").startswith(unique.encode())]
    assert sorted((d.key, d.context("reason")) for d in mine) == [
        (f"{unique}-a".encode(), "not-json"), (f"{unique}-b".encode(), "invalid")]
    assert all(d.context("consumer") == "registration" for d in mine)
    assert (await run.hub.readiness())["consumer:registration"]["ok"]
    for address in ("typo", "tpyo", "who"):
        assert run.received(f"{address}-{unique}@example.jp") == []
    assert rows(run.engine, users) == {"reg_card": 1, "reg_contractor": 1}
