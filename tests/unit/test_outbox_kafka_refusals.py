"""The outbox relay when Kafka does not acknowledge (hub.outbox.OutboxRelay
._send_until_acknowledged): the batch is sent again on a new producer, never dropped, and
the relay does not end; while it waits, unacknowledged_for() grows (readiness). Producer
and sends are fakes here; tests/chaos runs the same against a real 3-broker cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from aiokafka.errors import KafkaTimeoutError, NotEnoughReplicasError

from hub.outbox import OutboxRelay, PendingRecord
from hub.settings import Settings
from tests.support.hubproc import wait_for


class FakeProducer:
    def __init__(self, number: int) -> None:
        self.number = number
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


def relay_refusing(times: int) -> tuple[OutboxRelay, list[tuple[int, list[int]]],
                                         list[FakeProducer]]:
    relay = OutboxRelay(Settings(database_url="sqlite://"),  # type: ignore[arg-type]
                        sa.create_engine("sqlite://"))
    attempts: list[tuple[int, list[int]]] = []
    producers: list[FakeProducer] = []

    async def start_producer() -> Any:
        producers.append(FakeProducer(len(producers)))
        return producers[-1]

    async def send(batch: list[PendingRecord]) -> None:
        producer = relay._producer
        assert isinstance(producer, FakeProducer)
        attempts.append((producer.number, [r.id for r in batch]))
        if len(attempts) <= times:
            raise (KafkaTimeoutError if len(attempts) % 2 else NotEnoughReplicasError)()

    relay._start_producer = start_producer  # type: ignore[method-assign]
    relay._send = send  # type: ignore[method-assign]
    return relay, attempts, producers


def batch(*ids: int) -> list[PendingRecord]:
    return [PendingRecord(i, "proc.t.out", b"k", b"{}", []) for i in ids]


async def test_a_batch_kafka_refuses_is_sent_again_on_a_new_producer() -> None:
    relay, attempts, producers = relay_refusing(2)
    relay._producer = await relay._start_producer()
    assert relay.unacknowledged_for() == 0
    sending = asyncio.create_task(relay._send_until_acknowledged(batch(1, 2, 3)))
    await wait_for(lambda: len(attempts) >= 2, timeout_s=10, what="a second attempt")
    assert relay.unacknowledged_for() > 0  # /readyz reports it once past the bound
    await asyncio.wait_for(sending, 10)
    assert attempts == [(0, [1, 2, 3]), (1, [1, 2, 3]), (2, [1, 2, 3])]
    assert [p.stopped for p in producers] == [True, True, False]
    assert relay.unacknowledged_for() == 0


async def test_while_stopping_a_refused_batch_stays_in_the_outbox() -> None:
    relay, attempts, _ = relay_refusing(1)
    relay._producer = await relay._start_producer()
    relay.dispatch(batch(4))
    await relay.stop()
    await asyncio.wait_for(relay._send_until_acknowledged(batch(1, 2)), 10)
    assert attempts == [(0, [1, 2])]  # not again: the next process's poll sends the rows
    assert relay._queue == []
    assert relay._sent == []  # nothing deleted from the outbox
