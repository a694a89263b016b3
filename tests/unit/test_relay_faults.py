"""The outbox relay never ends on a Kafka or database error (hub.outbox.OutboxRelay), and
``hub run`` restarts a background task that stopped (hub.runtime.Hub._supervised).

Kafka is a fake producer here, so that each failure comes exactly when the test says;
the database is a migrated SQLite file. tests/e2e/test_relay_faults.py does the same
against the real broker and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import claimcheck
from hub.db import ClaimCheckRecord, OutboxRecord, create_db_engine
from hub.migrations import upgrade
from hub.outbox import BACKOFF_MAX_S, OutboxRelay, backoff_delay, enqueue_raw, insert_records
from hub.runtime import Hub
from hub.settings import KafkaSettings, RetentionSettings, Settings
from schemas.envelope import utc_now
from tests.support.hubproc import wait_for

OUTBOX = OutboxRecord.__table__
CLAIM_CHECKS = ClaimCheckRecord.__table__


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: Any,
               headers: list[tuple[str, bytes]]) -> object | None:
        if len(self.records) >= 50 or len(value) > 1_500_000:
            return None
        self.records.append((key, value, headers))
        return object()


class FakeKafka:
    """The broker as the relay's producers see it. ``fail`` maps a topic to the errors
    its next sends raise (one per send), ``refuse_start`` how many starts fail."""

    def __init__(self) -> None:
        self.got: dict[str, list[bytes]] = {}
        self.fail: dict[str, list[BaseException]] = {}
        self.unknown: set[str] = set()
        self.refuse_start = 0
        self.starts = 0
        self.limit = 2 * 1024 * 1024
        self.hold: set[str] = set()
        """Topics whose sends the brokers do not acknowledge until the test says so."""
        self.pending: list[asyncio.Future[Any]] = []

    def producer(self, **_: Any) -> FakeProducer:
        return FakeProducer(self)


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        self.kafka.starts += 1
        if self.kafka.refuse_start:
            self.kafka.refuse_start -= 1
            raise KafkaConnectionError("no broker")

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        if topic in self.kafka.unknown:
            raise KafkaTimeoutError(f"no metadata for {topic}")
        return {0, 1}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    def _outcome(self, topic: str, values: list[bytes]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        errors = self.kafka.fail.get(topic)
        if topic in self.kafka.hold:
            self.kafka.pending.append(future)
        elif errors:
            future.set_exception(errors.pop(0))
        elif any(len(v) > self.kafka.limit for v in values):
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.kafka.got.setdefault(topic, []).extend(values)
            future.set_result(None)
        return future

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        return self._outcome(topic, [v for _, v, _ in batch.records])

    async def send(self, topic: str, *, value: bytes, key: bytes | None, partition: int,
                   headers: list[tuple[str, bytes]]) -> Any:
        return self._outcome(topic, [value])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_db_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def settings() -> Settings:
    return Settings(database_url="sqlite://",  # type: ignore[arg-type]
                    outbox_poll_interval_s=0.02, outbox_orphan_age_s=0.0,
                    kafka=KafkaSettings(max_record_bytes=100_000))


def relay_for(engine: Engine, kafka: FakeKafka) -> OutboxRelay:
    # Backoffs at their shortest (the jitter's lower end, half a second at the first try).
    return OutboxRelay(settings(), engine, rng=random.Random(0), producer_factory=kafka.producer)


def write(engine: Engine, topic: str, values: list[bytes]) -> None:
    with Session(engine) as session, session.begin():
        for v in values:
            enqueue_raw(session, topic, key=b"k", value=v, headers=[("h", b"1")])


def outbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() or 0)


@pytest.fixture(autouse=True)
def _limit() -> Iterator[None]:
    claimcheck.configure(100_000)
    yield
    claimcheck.configure(claimcheck.DEFAULT_MAX_RECORD_BYTES)


async def run_until(relay: OutboxRelay, condition: Any, what: str) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await wait_for(condition, timeout_s=20, what=what)
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(d <= BACKOFF_MAX_S for d in delays)
    assert delays[-1] >= BACKOFF_MAX_S / 2
    assert len({round(backoff_delay(8, rng), 6) for _ in range(5)}) > 1  # jittered


async def test_a_failing_topic_waits_while_the_others_flow_and_then_goes_in_order(
        engine: Engine) -> None:
    kafka = FakeKafka()
    kafka.fail["down"] = [KafkaTimeoutError("not acknowledged"),
                          KafkaConnectionError("connection lost")]
    write(engine, "down", [b"d0", b"d1"])
    write(engine, "up", [b"u0", b"u1"])
    relay = relay_for(engine, kafka)
    task = asyncio.create_task(relay.run())
    await wait_for(lambda: kafka.got.get("up") == [b"u0", b"u1"], timeout_s=10,
                   what="the healthy topic's records")
    assert "down" not in kafka.got
    assert not relay.healthy
    write(engine, "down", [b"d2"])  # later records of a waiting topic go behind it
    await wait_for(lambda: kafka.got.get("down") == [b"d0", b"d1", b"d2"], timeout_s=15,
                   what="the failed topic's records, after two failed tries")
    await wait_for(lambda: outbox_count(engine) == 0, timeout_s=10, what="the outbox drained")
    assert relay.healthy
    assert not task.done()  # it never ended
    await relay.stop()
    await asyncio.wait_for(task, 10)


async def test_no_broker_at_start_then_one(engine: Engine) -> None:
    kafka = FakeKafka()
    kafka.refuse_start = 2
    write(engine, "t", [b"a"])
    relay = relay_for(engine, kafka)
    await run_until(relay, lambda: kafka.got.get("t") == [b"a"], "the record once Kafka is up")
    assert kafka.starts == 3


async def test_an_unknown_topic_does_not_stop_the_relay(engine: Engine) -> None:
    kafka = FakeKafka()
    kafka.unknown.add("gone")
    write(engine, "gone", [b"g"])
    write(engine, "here", [b"h"])
    relay = relay_for(engine, kafka)
    task = asyncio.create_task(relay.run())
    await wait_for(lambda: kafka.got.get("here") == [b"h"], timeout_s=10, what="other topic")
    kafka.unknown.clear()  # the topic is created again (hub topics apply)
    await wait_for(lambda: kafka.got.get("gone") == [b"g"], timeout_s=15, what="recreated")
    await relay.stop()
    await asyncio.wait_for(task, 10)


async def test_database_errors_in_the_poll_and_the_deletes_are_waited_out(
        engine: Engine) -> None:
    kafka = FakeKafka()
    write(engine, "t", [b"a", b"b"])
    relay = relay_for(engine, kafka)
    broken = {"fetch": 2, "delete": 2}
    fetch, delete = relay._fetch_ids, relay._delete

    def flaky_fetch() -> list[int]:
        if broken["fetch"]:
            broken["fetch"] -= 1
            raise sa.exc.OperationalError("select", {}, Exception("server closed"))
        return fetch()

    def flaky_delete(ids: list[int]) -> None:
        if broken["delete"]:
            broken["delete"] -= 1
            raise sa.exc.OperationalError("delete", {}, Exception("server closed"))
        delete(ids)

    relay._fetch_ids = flaky_fetch  # type: ignore[method-assign]
    relay._delete = flaky_delete  # type: ignore[method-assign]
    await run_until(relay, lambda: outbox_count(engine) == 0 and kafka.got.get("t"),
                    "sent and deleted after the database came back")
    assert broken == {"fetch": 0, "delete": 0}
    assert kafka.got["t"] == [b"a", b"b"]


async def test_an_oversized_row_goes_by_reference_at_queue_time_and_at_send_time(
        engine: Engine) -> None:
    big = b"x" * 150_000
    write(engine, "t", [big])  # checked when queued: already a pointer in the outbox
    with engine.connect() as conn:
        (queued,) = conn.execute(sa.select(OUTBOX.c.value, OUTBOX.c.headers)).all()
    assert len(queued.value) < 1000
    assert claimcheck.H_CLAIM in queued.headers
    # A row written before the check (an older hub, or a lower limit): the relay checks it
    # in before sending.
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX).values(topic="t", key=b"k", value=big + b"!",
                                          headers="[]", created_at=utc_now()))
    kafka = FakeKafka()
    relay = relay_for(engine, kafka)
    await run_until(relay, lambda: outbox_count(engine) == 0, "both sent")
    assert len(kafka.got["t"]) == 2
    assert all(len(v) < 1000 for v in kafka.got["t"])
    with engine.connect() as conn:
        stored = sorted(len(v) for v in conn.execute(sa.select(CLAIM_CHECKS.c.value)).scalars())
    assert stored == [150_000, 150_001]


async def test_a_broker_limit_below_the_setting_is_learnt(engine: Engine) -> None:
    kafka = FakeKafka()
    kafka.limit = 50_000  # the brokers' message.max.bytes is lower than max_record_bytes
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX).values(topic="t", key=b"k", value=b"y" * 80_000,
                                          headers="[]", created_at=utc_now()))
    relay = relay_for(engine, kafka)
    await run_until(relay, lambda: outbox_count(engine) == 0, "sent by reference")
    assert len(kafka.got["t"]) == 1
    assert len(kafka.got["t"][0]) < 1000


async def test_sends_kafka_does_not_acknowledge_show_as_a_growing_wait(engine: Engine) -> None:
    kafka = FakeKafka()
    kafka.hold.add("t.held")
    relay = relay_for(engine, kafka)
    write(engine, "t.held", [b"a", b"b"])
    assert relay.unacknowledged_for() == 0
    task = asyncio.create_task(relay.run())
    try:
        await wait_for(lambda: kafka.pending, timeout_s=20, what="a send waiting for acks")
        first = relay.unacknowledged_for()
        assert first > 0
        await wait_for(lambda: relay.unacknowledged_for() > first + 0.3, timeout_s=20,
                       what="the wait to grow")
        for future in kafka.pending:  # the brokers answer at last
            future.set_result(None)
        await wait_for(lambda: relay.unacknowledged_for() == 0, timeout_s=20,
                       what="the wait to end")
        await wait_for(lambda: outbox_count(engine) == 0, timeout_s=20, what="the rows sent")
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 10)


def test_dead_letter_rows_over_the_limit_are_pointers(engine: Engine) -> None:
    rows = [{"topic": "t.dlq", "key": b"k", "value": b"z" * 120_000,
             "headers": '[["x-dlq-reason","oversize"]]', "created_at": utc_now()}]
    with Session(engine) as session, session.begin():
        (pending,) = insert_records(session, rows)
    headers = pending.header_list()
    assert ("x-dlq-reason", b"oversize") in headers
    assert dict(headers)[claimcheck.H_CLAIM_BYTES] == b"120000"
    assert len(pending.value) < 1000


async def test_a_task_that_crashes_is_restarted_and_healthz_says_so_meanwhile(
        engine: Engine) -> None:
    kafka = FakeKafka()
    s = Settings(database_url="sqlite://",  # type: ignore[arg-type]
                 retention=RetentionSettings(enabled=False), migrate_on_start=False)
    hub = Hub(s, [], engine=engine, serve_http=False)
    hub.relay = relay_for(engine, kafka)
    broken = True
    runs = 0
    original = hub.relay._take_ready

    def take_ready() -> list[Any]:
        nonlocal runs
        runs += 1
        if broken:
            raise RuntimeError("a bug in the relay")
        return original()

    hub.relay._take_ready = take_ready  # type: ignore[method-assign]
    from hub import metrics

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.http),
                                 base_url="http://hub")

    await hub.start()
    try:
        await wait_for(lambda: "outbox-relay" in hub.liveness(), timeout_s=10,
                       what="the relay reported down")
        async with client() as http:
            down = await http.get("/healthz")
        assert down.status_code == 503
        assert "RuntimeError: a bug in the relay" in down.json()["down"]["outbox-relay"]
        assert metrics.TASK_UP.labels("outbox-relay")._value.get() == 0
        await wait_for(lambda: runs >= 2, timeout_s=10, what="a restart")
        assert metrics.TASK_RESTARTS.labels("outbox-relay")._value.get() >= 1
        broken = False
        write(engine, "t", [b"after"])
        await wait_for(lambda: kafka.got.get("t") == [b"after"], timeout_s=20,
                       what="the restarted relay sending")
        assert hub.liveness() == {}
        async with client() as http:
            up = await http.get("/healthz")
        assert up.status_code == 200
        assert up.json() == {"status": "ok"}
        assert metrics.TASK_UP.labels("outbox-relay")._value.get() == 1
    finally:
        await asyncio.wait_for(hub.stop(), 30)


def test_consumers_resolve_pointers_and_dead_letter_a_pointer_whose_value_is_gone(
        engine: Engine) -> None:
    from hub.delivery import Delivery
    from schemas.envelope import new_envelope
    from schemas.wire import PoisonReason, WireError, encode
    from tests.support.ledger import LedgerEntryRequested

    env = new_envelope(LedgerEntryRequested(entry_no=1, amount=1), correlation_id="c",
                       procuring_entity="saitama-pref", producer="test")
    key, value, headers = encode(env)
    with Session(engine) as session, session.begin():
        pointer, pointer_headers = claimcheck.check_in(session, "t", key=key, value=value,
                                                       headers=headers, now=utc_now())
    present = Delivery("t", 0, 0, key, pointer, pointer_headers)
    gone = Delivery("t", 0, 1, key, pointer,
                    [(k, b"0" * 32 if k == claimcheck.H_CLAIM else v)
                     for k, v in pointer_headers])
    claimcheck.resolve(engine, [present, gone])
    assert present.value == value
    assert not claimcheck.is_pointer(present.headers)
    assert present.decoded == env
    assert isinstance(gone.decoded, WireError)
    assert gone.decoded.reason is PoisonReason.OVERSIZE
    assert "no longer in the hub's database" in gone.decoded.detail
