"""Each propagation target's own policy (REG-9 with REG-5) and announced maintenance
windows (WIN-2) through the registration handlers, store and nightly batch, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from pipelines.registration.models import PendingPropagationRow
from pipelines.registration.propagation import propagate
from pipelines.registration.queries import find_active_card
from pipelines.registration.store import aware
from schemas.envelope import JST
from schemas.mail import MailKind, MailRequested
from schemas.registration import CardRegistered, RegistrationRejected
from schemas.registry import Payload
from schemas.topics import Topics
from tests.integration.test_registration_store import handle, of, seed
from tests.unit.test_registration_rules import ISSUER, NOW, command_of, qual, register
from tests.unit.test_registration_targets import REP_CARD, _book

pytestmark = pytest.mark.postgres

NOW_DT = datetime.fromisoformat(NOW)
NIGHT = NOW_DT + timedelta(days=1, hours=-7)  # 03:00 JST the next day


def test_a_representative_card_applied_at_once_is_refused_by_kawagoe(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"))
    emitted = handle(engine, command_of(register(the_card=REP_CARD,
                                                 apply_now_to=("kawagoe-city",))))
    assert [e.procuring_entity for e in of(emitted, CardRegistered)] == ["saitama-pref"]
    (refused,) = of(emitted, RegistrationRejected)
    assert (refused.procuring_entity, refused.propagated_from) == ("kawagoe-city",
                                                                   "saitama-pref")
    assert [v.rule_id for v in refused.violations] == ["REG-5"]
    mails = [(t, p.kind) for t, p in emitted if isinstance(p, MailRequested)]
    assert mails == [(Topics.MAIL_REQUESTS.name, MailKind.REGISTRATION),
                     (Topics.MAIL_REQUESTS.name, MailKind.PROPAGATION_REFUSED)]
    with Session(engine) as session:
        assert find_active_card(session, ISSUER, "121", NOW_DT, entity="saitama-pref")
        assert find_active_card(session, ISSUER, "121", NOW_DT, entity="kawagoe-city") is None
        assert session.exec(select(PendingPropagationRow)).all() == []


def test_the_nightly_batch_asks_the_target_again(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"))
    handle(engine, command_of(register()))
    seed(engine, qual("kawagoe-city", contractor_name="川越 三郎"))  # overnight: REG-5 there
    sent: list[Payload] = []

    def emit(session: Session, event: Payload, pending: Any) -> None:
        sent.append(event)

    with Session(engine) as session:
        report = propagate(session, NIGHT, emit=emit)
        assert (report.done, report.skipped, report.failed) == (0, 1, 0)
        assert "REG-5" in report.skipped_notes[0]
        (row,) = session.exec(select(PendingPropagationRow)).all()
        assert row.status == "skipped"
        assert find_active_card(session, ISSUER, "121", NIGHT, entity="kawagoe-city") is None
    assert [type(e).__name__ for e in sent] == ["RegistrationRejected", "MailRequested"]
    assert isinstance(sent[1], MailRequested)
    assert sent[1].values["not_usable_at"] == "川越市（工事）"


def test_the_batch_holds_a_propagation_until_the_targets_window_ends(engine: Engine) -> None:
    seed(engine, qual(), qual("kawagoe-city"))
    handle(engine, command_of(register()))
    book = _book(**{"kawagoe-city": {"maintenance": [
        {"date": "2026-11-25", "start": "02:00", "end": "05:00", "stops": "registration"}]}})
    with Session(engine) as session:
        held = propagate(session, NIGHT, book=book)
        assert (held.done, held.skipped, held.failed, held.held) == (0, 0, 0, 1)
        (row,) = session.exec(select(PendingPropagationRow)).all()
        assert (row.status, row.attempts) == ("pending", 0)
        end = datetime(2026, 11, 25, 5, 0, tzinfo=JST)
        assert aware(row.due_at) == end
        assert propagate(session, NIGHT + timedelta(hours=1), book=book).done == 0
        after = propagate(session, end, book=book)
        assert (after.done, after.held) == (1, 0)
        assert find_active_card(session, ISSUER, "121", end, entity="kawagoe-city")
