"""ConsumerRuntime.accept: a batch is read while the one before is handled, batches are
handled one at a time and in order, offsets follow in order, and a failed batch stops
every later one (nothing after it handled or committed). The processor and the Kafka
consumer are fakes here; tests/e2e (delivery, crash-restart-rebalance, registration)
run the same code against the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from aiokafka import TopicPartition

from hub.broker import ConsumerRuntime
from hub.consumers import ConsumerSpec
from hub.delivery import Delivery
from hub.settings import KafkaSettings


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def batch(first: int, n: int = 3) -> list[Record]:
    return [Record("t", 0, o, b"k", b"not json", ()) for o in range(first, first + n)]


class FakeConsumer:
    def __init__(self, log: list[str], commit_hangs: bool = False) -> None:
        self.log, self.commit_hangs = log, commit_hangs

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_hangs:  # aiokafka's commit in flight while its consumer stops
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.log.append("commit cancelled")
                raise
        await asyncio.sleep(0.01)  # a round trip to the group coordinator
        self.log.append(f"commit {max(offsets.values())}")

    def assignment(self) -> set[TopicPartition]:
        return set()


class FakeSubscriber:
    def __init__(self, log: list[str], commit_hangs: bool = False) -> None:
        self.consumer = FakeConsumer(log, commit_hangs)


class FakeProcessor:
    """Handles a batch in 50 ms; notes when it starts and ends and what was decoded."""

    def __init__(self, log: list[str], fail_at: int | None = None) -> None:
        self.log, self.fail_at, self.busy = log, fail_at, False

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        assert not self.busy, "two batches handled at once"
        self.busy = True
        first = deliveries[0].offset
        self.log.append(f"start {first}")
        try:
            await asyncio.sleep(0.05)
            if first == self.fail_at:
                raise ConnectionError("database down")
        finally:
            self.busy = False
        self.log.append(f"end {first}")


def runtime(log: list[str], fail_at: int | None = None, *, commit_hangs: bool = False,
            kafka: KafkaSettings | None = None) -> ConsumerRuntime:
    rt = ConsumerRuntime(ConsumerSpec("c", ()), FakeProcessor(log, fail_at),  # type: ignore[arg-type]
                         kafka or KafkaSettings(), on_committed=lambda: None)
    rt.subscriber = FakeSubscriber(log, commit_hangs)
    return rt


async def test_the_next_batch_is_read_while_one_is_handled_and_order_is_kept() -> None:
    log: list[str] = []
    rt = runtime(log)
    read: list[int] = []
    original = Delivery.from_record

    def noting(record: Any) -> Delivery:
        read.append(record.offset)
        if record.offset % 3 == 0:
            log.append(f"read {record.offset}")
        return original(record)

    Delivery.from_record = staticmethod(noting)  # type: ignore[method-assign]
    try:
        for first in (0, 3, 6):
            await rt.accept(batch(first))
        await rt.drain()
    finally:
        Delivery.from_record = original  # type: ignore[method-assign]
    assert read == list(range(9))
    # batch 3 is read while batch 0 is handled, batch 6 while batch 3 is handled
    assert log.index("read 3") < log.index("end 0")
    assert log.index("read 6") < log.index("end 3")
    handled = [e for e in log if e.startswith(("start", "end"))]
    assert handled == ["start 0", "end 0", "start 3", "end 3", "start 6", "end 6"]
    assert [e for e in log if e.startswith("commit")] == ["commit 3", "commit 6", "commit 9"]


async def test_while_stopping_each_batch_is_handled_and_committed_before_the_callback_returns(
        ) -> None:
    # FastStream stops the consumer as soon as the callback returns: a commit still in
    # flight then would never end (ConsumerRuntime.finish_commit).
    log: list[str] = []
    rt = runtime(log)
    rt.stopping = True
    await rt.accept(batch(0))
    assert log[-2:] == ["end 0", "commit 3"]
    await rt.accept(batch(3))
    assert log[-2:] == ["end 3", "commit 6"]


async def test_stopping_gives_up_a_commit_that_does_not_end(
        caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    rt = runtime(log, commit_hangs=True, kafka=KafkaSettings(stop_commit_timeout_s=0.2))
    await rt.accept(batch(0))
    await rt.settle()
    # Bounded here so that a regression fails instead of hanging the test run.
    await asyncio.wait_for(rt.drain(), timeout=5)
    assert log == ["start 0", "end 0", "commit cancelled"]
    assert "the last offset commit did not end within 0.2 s" in caplog.text
    assert "read again and deduplicated" in caplog.text
    await asyncio.wait_for(rt.drain(), timeout=1)  # nothing left to wait for


async def test_a_failed_last_commit_is_reported_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    rt = runtime(log)

    async def refused(offsets: dict[TopicPartition, int]) -> None:
        raise RuntimeError("refused")

    rt.subscriber.consumer.commit = refused
    await rt.accept(batch(0))
    await rt.drain()
    assert "the last offset commit failed (RuntimeError('refused'))" in caplog.text


async def test_a_failed_batch_stops_every_later_one() -> None:
    log: list[str] = []
    rt = runtime(log, fail_at=0)
    rt.stopping = True  # while stopping the database outage is raised, not waited out
    with pytest.raises(ConnectionError):
        await rt.accept(batch(0))
    with pytest.raises(RuntimeError, match="earlier batch failed"):
        await rt.accept(batch(3))
    await rt.drain()
    assert "start 3" not in log
    assert not any(e.startswith("commit") for e in log)


async def test_a_batch_read_while_stopping_waits_for_the_one_in_flight() -> None:
    # SIGTERM while a batch is handled and the next one is being read: Hub.stop waits for
    # the batch in flight while FastStream hands over the next; they must not overlap.
    log: list[str] = []
    rt = runtime(log)
    await rt.accept(batch(0))  # handled in the background
    rt.stopping = True
    stop_waits = asyncio.create_task(rt.settle())
    await asyncio.sleep(0)  # Hub.stop is waiting for batch 0 now
    await rt.accept(batch(3))  # FakeProcessor fails if two batches are handled at once
    await stop_waits
    await rt.drain()
    handled = [e for e in log if e.startswith(("start", "end"))]
    assert handled == ["start 0", "end 0", "start 3", "end 3"]
    assert [e for e in log if e.startswith("commit")] == ["commit 3", "commit 6"]
