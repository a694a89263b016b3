"""Registration handlers, store, queries and propagation against a real database
(SQLite file and PostgreSQL, migrated by Alembic up to 0002_registration), through a
small fake HandlerContext that collects what the handlers emit."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.processing import Processor
from hub.settings import RetrySettings
from pipelines.registration.handlers import RegistrationHandlers
from pipelines.registration.models import (
    CardRegistrationRow,
    CardRow,
    ContractorRow,
    PendingPropagationRow,
    QualificationRow,
)
from pipelines.registration.propagation import propagate
from pipelines.registration.qualification_csv import (
    QualificationCsvError,
    import_qualifications_csv,
)
from pipelines.registration.queries import find_active_card, verify_password
from pipelines.registration.store import load_world
from schemas.envelope import Envelope, new_envelope
from schemas.mail import MailRequested
from schemas.registration import (
    CardRegistered,
    CardRenewed,
    Domain,
    RegistrationNeedsConfirmation,
    RegistrationRejected,
)
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec
from schemas.wire import decode, encode
from tests.unit.test_registration_properties import ENTITIES, USERS, play
from tests.unit.test_registration_rules import (
    ISSUER,
    NOW,
    USER,
    card,
    change,
    command_of,
    qual,
    qualification_update,
    register,
    renew,
)

pytestmark = pytest.mark.postgres

NOW_DT = datetime.fromisoformat(NOW)
PIPELINE = RegistrationHandlers()
"""The registration handlers on the packaged default policy, as the hub runs them."""


@dataclass
class FakeContext:
    """Collects emits instead of writing the outbox (a unit fake of HandlerContext)."""

    session: Session
    now: datetime
    emitted: list[tuple[str, Payload]] = field(default_factory=list)

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        self.emitted.append((topic.name, payload))
        return cause.caused(payload, producer="test", entity=entity)


def handle(engine: Engine, payload: Payload, now: datetime = NOW_DT,
           acted_at: datetime | None = None) -> list[tuple[str, Payload]]:
    envelope = new_envelope(payload, correlation_id=getattr(payload, "user_id", "q"),
                            procuring_entity=payload.procuring_entity,
                            producer="gateway", occurred_at=acted_at or now)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        ctx = FakeContext(session, now)
        PIPELINE.handlers[type(payload)](ctx, envelope)
    return ctx.emitted


def seed(engine: Engine, *rows: dict[str, Any]) -> None:
    for row in rows:
        handle(engine, qualification_update(row))


def of(emitted: list[tuple[str, Payload]], kind: type[Payload]) -> list[Any]:
    return [p for _, p in emitted if isinstance(p, kind)]


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {t.__tablename__: sorted(map(tuple, conn.execute(sa.select(t.__table__))), key=str)
                for t in (CardRow, CardRegistrationRow, ContractorRow, PendingPropagationRow)}


def test_register_emits_event_and_mail_and_stores_the_card(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"))
    emitted = handle(engine, command_of(register()))
    registered = of(emitted, CardRegistered)
    assert [t for t, p in emitted if isinstance(p, MailRequested)] == [Topics.MAIL_REQUESTS.name]
    assert {t for t, p in emitted if not isinstance(p, MailRequested)} == {
        Topics.REGISTRATION_EVENTS.name}
    assert len(registered) == 1
    assert of(emitted, MailRequested)[0].to == ("ic-card@example.jp",)  # NTF-1
    with Session(engine) as session:
        active = find_active_card(session, ISSUER, "121", NOW_DT)
        assert active is not None
        assert (active.user_id, active.company_id) == (USER, registered[0].company_id)
        assert active.registered_at == (("saitama-pref", Domain.WORKS),)
        assert find_active_card(session, ISSUER, "121", NOW_DT, entity="kawagoe-city") is None
        assert find_active_card(session, ISSUER, "999", NOW_DT) is None
        assert find_active_card(session, ISSUER, "121", datetime(2031, 1, 1).astimezone()) is None
        pending = session.exec(select(PendingPropagationRow)).all()
        assert [(p.target_entity, p.status) for p in pending] == [("kawagoe-city", "pending")]


def test_rejection_changes_nothing_and_sends_no_mail(engine: Engine) -> None:
    seed(engine, qual(), qual(user_id="2222222222"))
    handle(engine, command_of(register()))
    before = snapshot(engine)
    emitted = handle(engine, command_of(register(user_id="2222222222")))
    rejected = of(emitted, RegistrationRejected)
    assert [v.rule_id for v in rejected[0].violations] == ["REG-1"]
    assert of(emitted, MailRequested) == []
    assert snapshot(engine) == before


def test_renewal_then_nightly_propagation_is_idempotent(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"))
    handle(engine, command_of(register(apply_now_to=("kawagoe-city",))))
    new = card("122", not_before="2026-11-01T00:00:00+09:00", auth="2026-11-24T09:59:00+09:00")
    emitted = handle(engine, command_of(renew(new=new, apply_to_other_entities=True)))
    assert len(of(emitted, CardRenewed)) == 1
    with Session(engine) as session:
        assert find_active_card(session, ISSUER, "121", NOW_DT, entity="saitama-pref") is None
        assert find_active_card(session, ISSUER, "121", NOW_DT, entity="kawagoe-city")
        early = propagate(session, NOW_DT + timedelta(hours=1))  # not due before the batch
        assert (early.done, early.skipped) == (0, 0)
        night = propagate(session, NOW_DT + timedelta(days=1))
        assert (night.done, night.skipped, night.failed) == (1, 0, 0)
        assert [type(e).__name__ for e in night.events] == ["CardRenewed", "CardRevoked"]
        again = propagate(session, NOW_DT + timedelta(days=1))
        assert (again.done, again.skipped) == (0, 0)
        assert find_active_card(session, ISSUER, "121", NOW_DT) is None  # RNW-7 everywhere
        active = find_active_card(session, ISSUER, "122", NOW_DT)
        assert active is not None
        assert active.registered_at == (("kawagoe-city", Domain.WORKS),
                                        ("saitama-pref", Domain.WORKS))


def test_propagation_resumes_after_a_failure(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"), qual(user_id="2222222222"),
         qual("kawagoe-city", user_id="2222222222"))
    handle(engine, command_of(register()))
    handle(engine, command_of(register(user_id="2222222222", the_card=card("555"))))
    calls: list[str] = []

    def flaky_emit(session: Session, event: Payload, pending: Any) -> None:
        calls.append(type(event).__name__)
        if len(calls) == 1:
            raise ConnectionError("outbox write lost")  # a crash in the middle of the batch

    with Session(engine) as session:
        first = propagate(session, NOW_DT + timedelta(days=1), emit=flaky_emit)
        assert (first.done, first.failed) == (1, 1)
        second = propagate(session, NOW_DT + timedelta(days=1), emit=flaky_emit)
        assert (second.done, second.failed) == (1, 0)
        rows = session.exec(select(PendingPropagationRow)).all()
        assert sorted((r.status, r.attempts) for r in rows) == [("done", 0), ("done", 1)]
        for serial in ("121", "555"):
            assert find_active_card(session, ISSUER, serial, NOW_DT, entity="kawagoe-city")


def test_econtract_reissued_card_waits_for_confirmation(engine: Engine) -> None:
    seed(engine, qual("mlit"))
    mlit = {"entity": "mlit", "system": "e-contract"}
    handle(engine, command_of(register(**mlit)))
    held = of(handle(engine, command_of(register(**mlit, the_card=card("122"), rep=None))),
              RegistrationNeedsConfirmation)
    assert len(held) == 1
    with Session(engine) as session:
        assert find_active_card(session, ISSUER, "122", NOW_DT) is None
    confirm = command_of({"type": "registration.registration-confirmed", "payload": {
        "procuring_entity": "mlit", "system": "e-contract", "domain": "works", "user_id": USER,
        "confirmation_id": str(held[0].confirmation_id), "card": card("122")}})
    assert len(of(handle(engine, confirm), CardRegistered)) == 1
    rejected = of(handle(engine, confirm), RegistrationRejected)  # used up
    assert [v.rule_id for v in rejected[0].violations] == ["REG-11"]
    with Session(engine) as session:
        assert find_active_card(session, ISSUER, "122", NOW_DT) is not None


def test_qualification_csv_import_and_password_check(engine: Engine) -> None:
    text = ("\ufeffuser_id,trade_name,head_office_address,representative_name,contractor_name,"
            "corporate_number,password\n"
            "1234567890,北東組株式会社,北東市中央町2丁目3番4号,日立 二郎,北東 次郎,"
            "5835678256246,Pass1234\n")
    with Session(engine) as session, session.begin():
        assert import_qualifications_csv(session, text, "saitama-pref", Domain.WORKS,
                                         NOW_DT) == 1
    with Session(engine) as session:
        assert verify_password(session, "saitama-pref", Domain.WORKS, USER, "Pass1234")
        assert not verify_password(session, "saitama-pref", Domain.WORKS, USER, "PassI234")
        assert not verify_password(session, "saitama-pref", Domain.GOODS, USER, "Pass1234")
        stored = session.execute(sa.text("select password_verifier from reg_qualification"))
        assert "Pass1234" not in str(stored.scalar_one())
        row = session.exec(select(QualificationRow)).one()
        assert "scrypt" not in repr(row)  # not even the verifier shows in logs
    seed(engine, qual())  # an update keeps the verifier
    with Session(engine) as session:
        assert verify_password(session, "saitama-pref", Domain.WORKS, USER, "Pass1234")
    with Session(engine) as session, pytest.raises(QualificationCsvError, match="line 2"):
        import_qualifications_csv(session, text.replace("5835678256246", "5835678256247"),
                                  "saitama-pref", Domain.WORKS, NOW_DT)


def random_stream(seed_: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed_)
    serials, new_serials = ("1", "2", "3"), ("6", "7", "2")
    steps: list[tuple[str, dict[str, Any]]] = []
    for i in range(12):
        user, entity = rng.choice(USERS), rng.choice(ENTITIES)
        kind = "register" if i < 3 else rng.choice(("register", "change", "renew", "batch"))
        if kind == "register":
            others = tuple(e for e in ENTITIES if e != entity) if rng.random() < 0.5 else ()
            steps.append((kind, register(user_id=user, entity=entity, apply_now_to=others,
                                         the_card=card(rng.choice(serials)))))
        elif kind == "change":
            steps.append((kind, change(user_id=user, entity=entity,
                                       the_card=card(rng.choice(serials)),
                                       apply_to_other_entities=rng.random() < 0.5)))
        elif kind == "renew":
            steps.append((kind, renew(user_id=user, entity=entity,
                                      old=card(rng.choice(serials)),
                                      new=card(rng.choice(new_serials),
                                               auth="2026-11-24T09:59:00+09:00"),
                                      apply_to_other_entities=rng.random() < 0.5)))
        else:
            steps.append((kind, {}))
    return steps


@pytest.mark.parametrize("example", range(4))
def test_database_and_memory_evolve_alike(engine: Engine, example: int) -> None:
    """The same stream through the handlers (database) and in memory: the same state."""
    stream = random_stream(example) if example else [
        ("register", register(apply_now_to=("kawagoe-city",))),
        ("renew", renew(apply_to_other_entities=True)), ("batch", {})]
    seed(engine, *(qual(e, user_id=u) for u in USERS for e in ENTITIES))
    for kind, step in stream:
        if kind == "batch":
            with Session(engine) as session:
                propagate(session, NOW_DT + timedelta(days=1, hours=-7))
        else:
            handle(engine, command_of(step))
    memory = play(stream)
    with Session(engine) as session:
        stored = load_world(session, network="saitama-joint", entities=ENTITIES, user_ids=USERS)
    assert stored.cards == memory.cards, json.dumps(stream, ensure_ascii=False)[:2000]
    assert stored.contractors == memory.contractors


def deliveries_of(payloads: list[Payload], first_offset: int = 0) -> list[Delivery]:
    out = []
    for offset, payload in enumerate(payloads, first_offset):
        env = new_envelope(payload, correlation_id=getattr(payload, "user_id", "q"),
                           occurred_at=NOW_DT, procuring_entity=payload.procuring_entity,
                           producer="gateway")
        key, value, headers = encode(env)
        out.append(Delivery(topic=Topics.REGISTRATION_COMMANDS.name, partition=0,
                            offset=offset, key=key, value=value, headers=headers))
    return out


@pytest.mark.parametrize("example", range(6))
async def test_whole_batches_through_prepare_evolve_like_memory(
        engine: Engine, example: int, caplog: pytest.LogCaptureFixture) -> None:
    """The same stream, each run of commands between nightly batches handled as ONE batch
    through the Processor with the prepare hook (state read once, written in bulk at the
    end): commands of a batch see each other's effects in order, as in memory."""
    stream = random_stream(100 + example) if example else [
        ("register", register(apply_now_to=("kawagoe-city",))),
        ("renew", renew(apply_to_other_entities=True)), ("batch", {})]
    caplog.set_level(logging.INFO, logger="hub.processing")
    spec = ConsumerSpec("registration", (Topics.REGISTRATION_COMMANDS,
                                         Topics.QUALIFICATION_UPDATES), handlers=PIPELINE.handlers,
                        prepare=PIPELINE.prepare)
    proc = Processor(spec, engine, RetrySettings(max_attempts=1, base_delay_s=1),
                     producer="test", clock=lambda: NOW_DT)
    # The qualifications arrive in the first batch too: the batch's own updates win.
    pending: list[Payload] = [qualification_update(qual(e, user_id=u))
                              for u in USERS for e in ENTITIES]
    offset, sizes = 0, []
    for kind, step in [*stream, ("end", {})]:
        if kind not in ("batch", "end"):
            pending.append(command_of(step))
            continue
        if pending:
            report = await proc.process(deliveries_of(pending, offset))
            assert (report.done, report.dead) == (len(pending), 0)
            offset, sizes, pending = offset + len(pending), [*sizes, len(pending)], []
        if kind == "batch":
            with Session(engine) as session:
                propagate(session, NOW_DT + timedelta(days=1, hours=-7))
    assert max(sizes) > 1
    # Whole batches: none fell back to the one-by-one path (which would hide a bulk bug).
    assert "handling one by one" not in caplog.text
    memory = play(stream)
    with Session(engine) as session:
        stored = load_world(session, network="saitama-joint", entities=ENTITIES, user_ids=USERS)
    assert stored.cards == memory.cards, json.dumps(stream, ensure_ascii=False)[:2000]
    assert stored.contractors == memory.contractors


async def test_a_batch_costs_the_same_statements_for_4_or_40_registrations(
        engine: Engine) -> None:
    """The batch's state is read and written per batch, not per command: the number of
    statements on the registration tables does not grow with the batch (the benchmark's
    79 → 1,000+ commands/s)."""
    spec = ConsumerSpec("registration", (Topics.REGISTRATION_COMMANDS,), handlers=PIPELINE.handlers,
                        prepare=PIPELINE.prepare)
    proc = Processor(spec, engine, RetrySettings(max_attempts=1, base_delay_s=1),
                     producer="test", clock=lambda: NOW_DT)
    users = [f"{5_000_000_000 + i:010d}" for i in range(44)]
    seed(engine, *(qual(e, user_id=u) for u in users for e in ENTITIES))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if " reg_" in statement:  # the pipeline's own tables (the outbox is the hub's)
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        counts = []
        for first, last in ((0, 4), (4, 44)):
            statements.clear()
            batch = [command_of(register(user_id=u, the_card=card(f"9{i}")))
                     for i, u in enumerate(users[first:last], first)]
            report = await proc.process(deliveries_of(batch, first))
            assert (report.done, report.dead) == (last - first, 0)
            counts.append(len(statements))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert counts[0] == counts[1], counts
    with Session(engine) as session:
        assert len(session.exec(select(CardRow)).all()) == 44


async def test_handlers_through_the_hub_processor_have_one_effect(engine: Engine) -> None:
    """The handlers under the hub's idempotent consumer: events and mails reach the outbox in
    the command's transaction, and a redelivered command has no second effect."""
    spec = ConsumerSpec("registration", (Topics.REGISTRATION_COMMANDS,
                                         Topics.QUALIFICATION_UPDATES), handlers=PIPELINE.handlers)
    proc = Processor(spec, engine, RetrySettings(max_attempts=2, base_delay_s=1),
                     producer="test", clock=lambda: NOW_DT)
    messages = [qualification_update(qual()), command_of(register()),
                command_of(register(user_id="2222222222"))]
    deliveries = []
    for offset, payload in enumerate(messages):
        env = new_envelope(payload, correlation_id="1234567890", occurred_at=NOW_DT,
                           procuring_entity="saitama-pref", producer="gateway")
        key, value, headers = encode(env)
        deliveries.append(Delivery(topic=Topics.REGISTRATION_COMMANDS.name, partition=0,
                                   offset=offset, key=key, value=value, headers=headers))
    first = await proc.process(deliveries)
    again = await proc.process(deliveries)
    assert (first.done, again.done, again.duplicate) == (3, 0, 3)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(OutboxRecord.__table__)))
    types = sorted(decode(r.value).type for r in rows)
    assert types == ["mail.requested", "registration.card-registered", "registration.rejected"]
    with Session(engine) as session:
        assert len(session.exec(select(CardRow)).all()) == 1


def test_a_batch_is_written_once(engine: Engine) -> None:
    """Batch.finish writes the batch's changes at its end, once: a second call is refused
    instead of writing against a stale base."""
    from pipelines.registration.batch import prepare_batch

    with Session(engine) as session, session.begin():
        batch = prepare_batch(PIPELINE.book, session, [])
        batch.finish(session)
        with pytest.raises(RuntimeError, match="written already"):
            batch.finish(session)
