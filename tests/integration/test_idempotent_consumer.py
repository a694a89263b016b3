"""The processor against a real database (SQLite file and PostgreSQL): exactly-once
effects, isolation of a bad message, retries with backoff, dead letters, replays."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord, ProcessedMessage, ScheduledRetry
from hub.delivery import H_REPLAY, Delivery
from hub.outbox import OutboxRelay, load_headers
from hub.processing import Processor
from hub.settings import RetrySettings, Settings
from schemas.envelope import new_envelope
from schemas.mail import MailKind, MailRequested
from schemas.wire import encode, header
from tests.support import ledger
from tests.support.ledger import LedgerEntryRequested

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
RETRIES = ScheduledRetry.__table__
PROCESSED = ProcessedMessage.__table__


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def entry(n: int, **kw: Any) -> Any:
    return new_envelope(LedgerEntryRequested(entry_no=n, amount=100 * n, **kw),
                        correlation_id=f"case-{n}", procuring_entity="saitama-pref",
                        producer="test")


def delivery(env: Any, offset: int,
             headers_extra: list[tuple[str, bytes]] | None = None) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic="t.in", partition=0, offset=offset, key=key, value=value,
                    headers=headers + (headers_extra or []))


@pytest.fixture
def setup(engine: Engine) -> tuple[Processor, Clock, Engine]:
    ledger.create_tables(engine)
    ledger._failures.clear()
    clock = Clock()
    spec = ConsumerSpec("ledger", ledger.topics("t"), handlers=ledger.consumer("t").handlers)
    proc = Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                     producer="test", clock=clock, rng=random.Random(7))
    return proc, clock, engine


def outbox(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)))


async def test_duplicate_delivery_has_one_effect(setup: Any) -> None:
    proc, _, engine = setup
    envs = [entry(n) for n in range(20)]
    first = await proc.process([delivery(e, i) for i, e in enumerate(envs)])
    # The same records again (a redelivery after a crash), and one repeated inside a batch.
    again = await proc.process([delivery(e, i) for i, e in enumerate(envs)]
                               + [delivery(envs[0], 99)])
    assert (first.done, first.duplicate) == (20, 0)
    assert (again.done, again.duplicate) == (0, 21)
    assert ledger.entry_counts(engine) == dict.fromkeys(range(20), 1)
    assert len(outbox(engine)) == 20


async def test_poison_is_dead_lettered_with_reason_and_the_rest_flows(setup: Any) -> None:
    proc, _, engine = setup
    good = [delivery(entry(n), n) for n in range(3)]
    bad = [
        Delivery("t.in", 0, 10, b"k", b"\xff\xfenot json", [("x", b"\xff")]),
        Delivery("t.in", 0, 11, b"k", b'{"type": "nope", "schema_version": 1}', []),
        Delivery("t.in", 0, 12, b"k", b"x" * 2_000_000, []),
        Delivery("t.in", 0, 13, b"k",
                 encode(entry(5))[1].replace(b'"amount":500', b'"amount":"500"'), []),
    ]
    report = await proc.process(good[:2] + bad + good[2:])
    assert report.done == 3
    assert sorted(report.dead_reasons) == ["invalid", "not-json", "oversize", "unknown-type"]
    rows = [r for r in outbox(engine) if r.topic == "t.in.dlq"]
    assert len(rows) == 4
    first = load_headers(rows[0].headers)
    assert header(first, "x-dlq-original-topic") == "t.in"
    assert header(first, "x-dlq-original-offset") == "10"
    assert header(first, "x-dlq-reason") == "not-json"
    assert "JSON" in (header(first, "x-dlq-text-en") or "")
    assert header(first, "x") is not None  # original headers kept, even undecodable ones
    assert rows[0].value == b"\xff\xfenot json"  # the original bytes, untouched
    invalid = load_headers(rows[3].headers)
    assert "payload.amount" in (header(invalid, "x-dlq-error-message") or "")
    # Redelivered poison is not dead-lettered twice.
    await proc.process(bad)
    assert len([r for r in outbox(engine) if r.topic == "t.in.dlq"]) == 4


async def test_transient_failure_is_retried_with_backoff_then_succeeds(setup: Any) -> None:
    proc, clock, engine = setup
    # The first run fails in the batch, then alone (two calls): attempt 1; a third call fails.
    envs = [entry(1, fail_times=3), entry(2)]
    report = await proc.process([delivery(e, i) for i, e in enumerate(envs)])
    assert (report.done, report.retried) == (1, 1)  # entry 2 is not held back by entry 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(RETRIES)).one()
    assert row.attempt == 1
    first_delay = (row.due_at.replace(tzinfo=UTC) - clock.now).total_seconds()
    assert 0.8 <= first_delay <= 1.2  # base 1 s ± 20 % jitter
    assert await proc.run_due_retries() == 0  # not due yet
    clock.now += timedelta(seconds=2)
    await proc.run_due_retries()
    with engine.connect() as conn:
        row = conn.execute(sa.select(RETRIES)).one()
    assert row.attempt == 2
    second_delay = (row.due_at.replace(tzinfo=UTC) - clock.now).total_seconds()
    assert 1.6 <= second_delay <= 2.4  # doubled
    clock.now += timedelta(seconds=3)
    await proc.run_due_retries()
    assert ledger.entry_counts(engine) == {1: 1, 2: 1}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(RETRIES)).scalar() == 0
        assert conn.execute(sa.select(PROCESSED.c.outcome).where(
            PROCESSED.c.message_id == str(envs[0].message_id))).scalar() == "done"
    # The original record redelivered after the retry succeeded: no second effect.
    await proc.process([delivery(envs[0], 0)])
    assert ledger.entry_counts(engine)[1] == 1


async def test_retries_exhausted_go_to_the_dead_letter_topic_with_history(setup: Any) -> None:
    proc, clock, engine = setup
    env = entry(7, fail_times=10)
    await proc.process([delivery(env, 0)])
    for _ in range(5):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    dlq = [r for r in outbox(engine) if r.topic == "t.in.dlq"]
    assert len(dlq) == 1
    h = load_headers(dlq[0].headers)
    assert header(h, "x-dlq-reason") == "retries-exhausted"
    assert header(h, "x-dlq-attempts") == "3"
    assert header(h, "x-dlq-error-class") == "FlakyPeerError"
    assert header(h, "x-message-id") == str(env.message_id)
    assert '"attempt": 3' in (header(h, "x-dlq-history") or "")
    assert ledger.entry_counts(engine) == {}


async def test_permanent_failure_is_dead_lettered_at_once_with_rule_ids(setup: Any) -> None:
    proc, _, engine = setup
    report = await proc.process([delivery(entry(3, permanent=True), 0)])
    assert report.dead_reasons == ["permanent-failure"]
    h = load_headers(next(r for r in outbox(engine) if r.topic == "t.in.dlq").headers)
    assert header(h, "x-dlq-rule-ids") == "INV-3"
    assert header(h, "x-dlq-attempts") == "1"


async def test_replayed_dead_letter_is_processed_once(setup: Any) -> None:
    proc, clock, engine = setup
    env = entry(4, fail_times=4)  # batch + alone, then two retries: dead after 3 attempts
    await proc.process([delivery(env, 0)])
    for _ in range(3):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    assert ledger.entry_counts(engine) == {}
    # The plain redelivery of the original record does nothing...
    await proc.process([delivery(env, 0)])
    assert ledger.entry_counts(engine) == {}
    # ... a replay (after the fix) is processed, and a second replay is not.
    replay = delivery(env, 50, [(H_REPLAY, b"t.in.dlq/0/0")])
    await proc.process([replay])
    await proc.process([delivery(env, 51, [(H_REPLAY, b"t.in.dlq/0/0")])])
    assert ledger.entry_counts(engine) == {4: 1}


async def test_maintenance_hold_waits_without_counting_an_attempt(setup: Any) -> None:
    proc, clock, engine = setup

    class PeerInMaintenance(Exception):
        def __init__(self, until: datetime) -> None:
            super().__init__(f"peer in maintenance until {until.isoformat()}")
            self.retry_at = until

    until = clock.now + timedelta(hours=4)
    calls: list[int] = []

    def handler(ctx: Any, envelope: Any) -> None:
        calls.append(1)
        if ctx.now < until:
            raise PeerInMaintenance(until)
        ledger.make_handler(ledger.topics("t")[1])(ctx, envelope)

    proc.spec = ConsumerSpec("ledger", ledger.topics("t"), handlers={LedgerEntryRequested: handler})
    proc.failures.max_attempts = 1  # a counted failure would dead-letter at once
    await proc.process([delivery(entry(9), 0)])
    with engine.connect() as conn:
        row = conn.execute(sa.select(RETRIES)).one()
    assert row.attempt == 0
    assert row.due_at.replace(tzinfo=UTC) == until
    clock.now = until + timedelta(seconds=1)
    await proc.run_due_retries()
    assert ledger.entry_counts(engine) == {9: 1}
    assert not [r for r in outbox(engine) if r.topic == "t.in.dlq"]


async def test_secret_in_an_error_never_reaches_the_dead_letter(setup: Any) -> None:
    proc, _, engine = setup

    def handler(ctx: Any, envelope: Any) -> None:
        raise ValueError("login failed for postgresql://hub:s3cr3t@db/hub with pin=123456")

    proc.spec = ConsumerSpec("ledger", ledger.topics("t"), handlers={LedgerEntryRequested: handler})
    proc.failures.max_attempts = 1
    await proc.process([delivery(entry(1), 0)])
    row = next(r for r in outbox(engine) if r.topic == "t.in.dlq")
    decoded = " ".join(v.decode() for _, v in load_headers(row.headers))
    assert "s3cr3t" not in decoded
    assert "123456" not in decoded
    assert "pin=***" in decoded


class BatchRecorder:
    """A consumer's per-batch state (ConsumerSpec.prepare): what it saw, and its finish."""

    def __init__(self, envelopes: Any, fail_with: int | None) -> None:
        self.prepared = [e.payload.entry_no for e in envelopes]
        self.handled: list[int] = []
        self.finished = False
        self.fail_with = fail_with

    def finish(self, session: Any) -> None:
        assert session.in_transaction()
        if self.fail_with in self.handled and len(self.handled) > 1:
            raise RuntimeError("the batch's bulk write failed")
        self.finished = True


def batch_spec(states: list[BatchRecorder], fail_with: int | None = None) -> ConsumerSpec:
    write = ledger.make_handler(ledger.topics("t")[1])

    def prepare(session: Any, envelopes: Any) -> BatchRecorder:
        states.append(BatchRecorder(envelopes, fail_with))
        return states[-1]

    def handler(ctx: Any, envelope: Any) -> None:
        assert ctx.prepared is states[-1]
        assert not ctx.prepared.finished
        ctx.prepared.handled.append(envelope.payload.entry_no)
        write(ctx, envelope)

    return ConsumerSpec("ledger", ledger.topics("t"), handlers={LedgerEntryRequested: handler},
                        prepare=prepare)


async def test_prepare_sees_the_new_messages_of_a_batch_once_and_finish_runs_last(
        setup: Any) -> None:
    proc, _, engine = setup
    states: list[BatchRecorder] = []
    proc.spec = batch_spec(states)
    envs = [entry(n) for n in range(7)]
    await proc.process([delivery(e, i) for i, e in enumerate(envs[:5])])
    report = await proc.process([delivery(e, i) for i, e in enumerate(envs)])
    assert (report.done, report.duplicate) == (2, 5)
    # Duplicates are dropped before prepare: it loads state only for what will be handled.
    assert [s.prepared for s in states] == [[0, 1, 2, 3, 4], [5, 6]]
    assert [s.handled for s in states] == [[0, 1, 2, 3, 4], [5, 6]]
    assert all(s.finished for s in states)
    assert ledger.entry_counts(engine) == dict.fromkeys(range(7), 1)


async def test_a_failing_finish_falls_back_to_one_message_batches(setup: Any) -> None:
    proc, _, engine = setup
    states: list[BatchRecorder] = []
    proc.spec = batch_spec(states, fail_with=3)
    report = await proc.process([delivery(entry(n), n) for n in range(5)])
    assert report.done == 5
    assert not report.dead_reasons
    # The batch's transaction rolled back; then prepare ran per message, each finished.
    assert [s.prepared for s in states] == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]
    assert not states[0].finished
    assert all(s.finished for s in states[1:])
    assert ledger.entry_counts(engine) == dict.fromkeys(range(5), 1)


async def test_messages_no_handler_wants_cost_no_transaction(setup: Any) -> None:
    """A topic carries several types; what this consumer has no handler for is counted as
    ignored without a database round trip, and a mixed batch handles the rest."""
    proc, _, engine = setup
    other = new_envelope(MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION,
                                       to=("ic-card@example.jp",)),
                         correlation_id="case-x", procuring_entity="saitama-pref",
                         producer="test")
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        alone = await proc.process([delivery(other, 1), delivery(other, 2)])
        assert statements == []
        mixed = await proc.process([delivery(other, 3), delivery(entry(1), 4)])
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert (alone.ignored, alone.done) == (2, 0)
    assert (mixed.ignored, mixed.done) == (1, 1)
    assert statements
    assert ledger.entry_counts(engine) == {1: 1}


async def test_a_slow_batchs_records_are_not_orphans_when_committed(setup: Any) -> None:
    """The handler's clock says the batch began long ago (a slow batch); its outbox rows are
    stamped when written, so the orphan poll does not take them before the writer sends
    them (it sent them twice), and takes them once they are as old as orphans are."""
    proc, clock, engine = setup
    clock.now = datetime.now(UTC) - timedelta(hours=1)
    await proc.process([delivery(entry(n), n) for n in range(3)])
    relay = OutboxRelay(Settings(database_url="sqlite://", outbox_orphan_age_s=0.5), engine)
    assert await asyncio.to_thread(relay._fetch_ids) == []
    await asyncio.sleep(0.6)
    assert len(await asyncio.to_thread(relay._fetch_ids)) == 3
