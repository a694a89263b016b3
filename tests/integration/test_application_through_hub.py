"""Online application submissions through the hub's idempotent consumer (CON-2, SUR-1).

Webhook and poll announce the same submission with the same message id, so the
application is fetched and published once. A peer answering garbage is retried,
dead-lettered with the reason, and the replay after the fix publishes it.
Real processor, real database (SQLite file, PostgreSQL), reference system on loopback.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from connectors.application import ApplicationConnector, ApplicationSettings, message_id_for
from connectors.application.effects import effects
from connectors.application.peer import ApplicationPeer
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord
from hub.delivery import H_REPLAY, Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.application import ApplicationSubmitted
from schemas.envelope import new_envelope
from schemas.topics import Topics
from schemas.wire import decode, encode, header
from tests.support.processing import Clock
from tests.support.processing import outbox_rows as outbox

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
TOKEN = "hub-app-token"


@pytest.fixture
def peer() -> Iterator[ApplicationPeer]:
    server = ApplicationPeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def processor(engine: Engine, peer: ApplicationPeer
                    ) -> AsyncIterator[tuple[Processor, Clock]]:
    conn = ApplicationConnector(ApplicationSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=0.5, retry_attempts=2,  # type: ignore[arg-type]
        retry_base_s=0.01, retry_max_s=0.02, breaker_failures=50))
    clock = Clock()
    spec = ConsumerSpec("connector.application", (Topics.APPLICATION_COMMANDS,),
                        handlers=effects(conn))
    yield Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                    producer="test", clock=clock, rng=random.Random(3)), clock
    await conn.aclose()


def announced(application_id: str, offset: int,
              extra: list[tuple[str, bytes]] | None = None) -> Delivery:
    """What the webhook callback or the poller publishes for one submission."""
    env = new_envelope(ApplicationSubmitted(application_id=application_id),
                       correlation_id=application_id, procuring_entity="ashikaga-city",
                       producer="test", message_id=message_id_for(application_id))
    key, value, headers = encode(env)
    return Delivery(topic=Topics.APPLICATION_COMMANDS.name, partition=0, offset=offset,
                    key=key, value=value, headers=headers + (extra or []))


def submit(peer: ApplicationPeer) -> str:
    return peer.submit(case_no="R5-0007", procedure="工程表", company="〇〇建設株式会社")


async def test_webhook_and_poll_announcements_publish_the_application_once(
        peer: ApplicationPeer, processor: tuple[Processor, Clock], engine: Engine) -> None:
    proc, _ = processor
    app_id = submit(peer)
    report = await proc.process([announced(app_id, 0), announced(app_id, 1)])
    assert (report.done, report.duplicate) == (1, 1)
    (row,) = outbox(engine, Topics.APPLICATION_EVENTS.name)
    received = decode(row.value, load_headers(row.headers))
    assert received.type == "application.received"
    assert received.correlation_id == "R5-0007"  # keyed by the case from here on
    assert received.payload.application_id == app_id


async def test_garbage_is_dead_lettered_with_reason_then_replayed(
        peer: ApplicationPeer, processor: tuple[Processor, Clock], engine: Engine) -> None:
    proc, clock = processor
    app_id = submit(peer)
    peer.faults.garbage = True
    await proc.process([announced(app_id, 0)])
    for _ in range(2):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    (dead,) = outbox(engine, Topics.APPLICATION_COMMANDS.dlq)
    headers = load_headers(dead.headers)
    assert header(headers, "x-dlq-reason") == "retries-exhausted"
    assert "not JSON" in (header(headers, "x-dlq-error-message") or "")
    assert peer.faults.requests == 6  # 3 deliveries x 2 in-connector attempts
    peer.faults.clear()
    await proc.process([announced(app_id, 9, [(H_REPLAY, b"dlq/0/0")])])
    assert len(outbox(engine, Topics.APPLICATION_EVENTS.name)) == 1
