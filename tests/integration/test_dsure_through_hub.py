"""D・Sure surety checks through the hub's idempotent consumer (SUR-2, WIN-2).

The connector's effect runs in the hub's real processor against a real database
(SQLite file and PostgreSQL) and the reference D・Sure on loopback: an outage is
retried, then dead-lettered to ``proc.surety.commands.dlq`` with the reason and
the attempt history; once D・Sure is back, the replayed dead letter yields the
certificate, once. A maintenance answer holds the check without using a try.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.effects import effects
from connectors.dsure.peer import DSurePeer, IssuedCertificate, seed_certificate
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord, ScheduledRetry
from hub.delivery import H_REPLAY, Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.envelope import new_envelope
from schemas.surety import SuretyCheckRequested, SuretyKeySource
from schemas.topics import Topics
from schemas.wire import decode, encode, header
from tests.support.processing import Clock
from tests.support.processing import outbox_rows as outbox

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
RETRIES = ScheduledRetry.__table__
TOKEN = "hub-test-token"


@pytest.fixture
def peer() -> Iterator[DSurePeer]:
    server = DSurePeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def connector(peer: DSurePeer) -> AsyncIterator[DSureConnector]:
    conn = DSureConnector(DSureSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=0.5, retry_attempts=2,  # type: ignore[arg-type]
        retry_base_s=0.01, retry_max_s=0.02, breaker_failures=50))
    yield conn
    await conn.aclose()


@pytest.fixture
def processor(engine: Engine, connector: DSureConnector) -> tuple[Processor, Clock]:
    clock = Clock()
    spec = ConsumerSpec("connector.dsure", (Topics.SURETY_COMMANDS,),
                        handlers=effects(connector))
    proc = Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                     producer="test", clock=clock, rng=random.Random(5))
    return proc, clock


def check(issued: IssuedCertificate) -> Any:
    return new_envelope(
        SuretyCheckRequested(contract_number=issued.certificate.contract_number,
                             auth_key=issued.auth_key, source=SuretyKeySource.APPLICATION),
        correlation_id="R5-0001", procuring_entity="ashikaga-city", producer="test")


def record(env: Any, offset: int, extra: list[tuple[str, bytes]] | None = None) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic=Topics.SURETY_COMMANDS.name, partition=0, offset=offset,
                    key=key, value=value, headers=headers + (extra or []))


async def test_outage_dead_letters_with_reason_and_replay_loses_nothing(
        peer: DSurePeer, processor: tuple[Processor, Clock], engine: Engine) -> None:
    proc, clock = processor
    issued = peer.issue(seed_certificate())
    env = check(issued)
    peer.stop()
    report = await proc.process([record(env, 0)])
    assert report.retried == 1
    for _ in range(2):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    (dead,) = outbox(engine, Topics.SURETY_COMMANDS.dlq)
    headers = load_headers(dead.headers)
    assert header(headers, "x-dlq-reason") == "retries-exhausted"
    assert header(headers, "x-dlq-attempts") == "3"
    assert "network" in (header(headers, "x-dlq-error-message") or "")
    assert issued.auth_key not in (header(headers, "x-dlq-error-message") or "")
    assert outbox(engine, Topics.SURETY_EVENTS.name) == []

    peer.start()
    replay = [(H_REPLAY, b"proc.surety.commands.dlq/0/0")]
    await proc.process([record(env, 0)])  # a plain redelivery does nothing more
    assert outbox(engine, Topics.SURETY_EVENTS.name) == []
    await proc.process([record(env, 7, replay)])
    await proc.process([record(env, 8, replay)])  # a second replay is a duplicate
    (event,) = outbox(engine, Topics.SURETY_EVENTS.name)
    fetched = decode(event.value, load_headers(event.headers))
    assert fetched.type == "surety.certificate-fetched"
    assert fetched.causation_id == env.message_id
    assert fetched.payload.certificate == issued.certificate


async def test_maintenance_holds_until_the_window_ends(
        peer: DSurePeer, processor: tuple[Processor, Clock], engine: Engine) -> None:
    proc, clock = processor
    proc.failures.max_attempts = 1  # a counted failure would dead-letter at once
    issued = peer.issue(seed_certificate())
    until = datetime.now(UTC) + timedelta(hours=2)
    peer.faults.maintenance_until = until
    await proc.process([record(check(issued), 0)])
    with engine.connect() as conn:
        row = conn.execute(sa.select(RETRIES)).one()
    assert row.attempt == 0
    assert abs((row.due_at.replace(tzinfo=UTC) - until).total_seconds()) < 1
    peer.faults.clear()
    clock.now = until + timedelta(seconds=1)
    await proc.run_due_retries()
    assert len(outbox(engine, Topics.SURETY_EVENTS.name)) == 1
    assert outbox(engine, Topics.SURETY_COMMANDS.dlq) == []
