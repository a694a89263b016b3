"""The outbox relay's deleter at shutdown (hub.outbox.OutboxRelay._delete_loop): it deletes
every send, then ends, whatever order the sends, the deletes and the stop come in. The
deletes are a fake here (a thread that waits to be let go); tests/e2e/test_outbox_relay_batches
and the delivery tests run the relay against the real broker and database."""

from __future__ import annotations

import asyncio
import threading

import sqlalchemy as sa

from hub.outbox import OutboxRelay
from hub.settings import Settings


class Deletes:
    """Stands in for OutboxRelay._delete: notes each call's ids and holds the first
    until let go."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.started = threading.Event()
        self.go = threading.Event()

    def __call__(self, ids: list[int]) -> None:
        self.calls.append(list(ids))
        self.started.set()
        self.go.wait(10)


def relay_with(deletes: Deletes) -> OutboxRelay:
    relay = OutboxRelay(Settings(database_url="sqlite://"),  # type: ignore[arg-type]
                        sa.create_engine("sqlite://"))
    relay._delete = deletes  # type: ignore[method-assign]
    return relay


def sent(relay: OutboxRelay, ids: list[int]) -> None:
    """What OutboxRelay._send does once the broker has the records."""
    relay._sent.extend(ids)
    relay._deletable.set()


def sending_over(relay: OutboxRelay) -> None:
    """What OutboxRelay.run does when it stops sending."""
    relay._stopping.set()
    relay._sending_over = True
    relay._deletable.set()


async def test_a_send_and_the_stop_during_a_delete_end_with_everything_deleted() -> None:
    # The stop's wake-up came while a delete ran, after one more send: the deleter used
    # it for that send, then waited for ever (the hub ignored SIGTERM).
    deletes = Deletes()
    relay = relay_with(deletes)
    deleter = asyncio.create_task(relay._delete_loop())
    sent(relay, [1, 2])
    await asyncio.to_thread(deletes.started.wait, 5)
    sent(relay, [3])
    sending_over(relay)
    deletes.go.set()
    await asyncio.wait_for(deleter, 5)  # bounded: a regression fails instead of hanging
    assert deletes.calls == [[1, 2], [3]]
    assert relay._deleted[0] == {1, 2, 3}


async def test_the_stop_ends_an_idle_deleter_and_one_that_has_work() -> None:
    idle = relay_with(Deletes())
    deleter = asyncio.create_task(idle._delete_loop())
    await asyncio.sleep(0)
    sending_over(idle)
    await asyncio.wait_for(deleter, 5)

    deletes = Deletes()
    deletes.go.set()
    busy = relay_with(deletes)
    sent(busy, [7])
    sending_over(busy)  # before the deleter even started
    await asyncio.wait_for(busy._delete_loop(), 5)
    assert deletes.calls == [[7]]


async def test_stop_is_not_the_end_of_sending() -> None:
    # relay.stop() only asks run() to send what was handed over; the deleter must keep
    # deleting until run() has sent it.
    deletes = Deletes()
    deletes.go.set()
    relay = relay_with(deletes)
    deleter = asyncio.create_task(relay._delete_loop())
    await relay.stop()
    await asyncio.sleep(0.05)
    assert not deleter.done()
    sent(relay, [4])  # run() sends the last records handed over
    sending_over(relay)
    await asyncio.wait_for(deleter, 5)
    assert deletes.calls == [[4]]
