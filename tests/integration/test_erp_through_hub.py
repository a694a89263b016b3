"""ERP registrations through the hub's idempotent consumer (CON-2, SUR-6, INV-3, WIN-2).

The ERP connector's effect runs in the hub's real processor against a real
database (SQLite file and PostgreSQL) and the reference ERP (spyne over HTTP)
on loopback: an outage is retried, then dead-lettered to
``proc.erp.commands.dlq`` with the reason and history; once the ERP is back,
the replayed dead letter registers once. A maintenance announced by the ERP
holds the command without using a try; a refusal becomes a rejection event.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.erp import ErpConnector, ErpSettings
from connectors.erp.effects import effects
from connectors.erp.peer import ErpPeer
from connectors.mail.peer import free_port
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord, ScheduledRetry
from hub.delivery import H_REPLAY, Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.envelope import new_envelope
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.topics import Topics
from schemas.wire import decode, encode, header
from tests.support.processing import Clock
from tests.support.processing import outbox_rows as outbox

pytestmark = [pytest.mark.soap, pytest.mark.postgres]

OUTBOX = OutboxRecord.__table__
RETRIES = ScheduledRetry.__table__


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def hub(engine: Engine, port: int) -> Iterator[tuple[Processor, Clock]]:
    clock = Clock()
    connector = ErpConnector(ErpSettings(
        url=f"http://127.0.0.1:{port}/", timeout_s=1.0, retry_attempts=2, retry_base_s=0.01,
        retry_max_s=0.02, breaker_failures=50))
    spec = ConsumerSpec("connector.erp", (Topics.ERP_COMMANDS,), handlers=effects(connector))
    yield (Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                     producer="test", clock=clock, rng=random.Random(4)), clock)
    connector.adapter.close()


def command(kind: ErpRegistrationKind = ErpRegistrationKind.CONTRACT,
            number: str = "R8-001") -> Any:
    extra: dict[str, Any] = (
        {"subject": "県道○○線舗装工事", "contract_date": date(2026, 11, 24),
         "period_start": date(2026, 12, 1), "period_end": date(2027, 3, 31)}
        if kind is ErpRegistrationKind.CONTRACT else
        {"request_date": date(2027, 4, 1), "invoice_number": "T9234567890123"})
    request = ErpRegistrationRequested(
        kind=kind, business_key=f"saitama-pref:{number}:{kind.value}", contract_number=number,
        contractor_id="1234567890123456", contractor_name="○○建設株式会社",
        amount_jpy=10_000_000, **extra)
    return new_envelope(request, correlation_id=number, procuring_entity="saitama-pref",
                        producer="test")


def record(env: Any, offset: int, extra: list[tuple[str, bytes]] | None = None) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic=Topics.ERP_COMMANDS.name, partition=0, offset=offset,
                    key=key, value=value, headers=headers + (extra or []))


async def test_outage_dead_letters_with_reason_and_replay_registers_once(
        hub: tuple[Processor, Clock], engine: Engine, port: int) -> None:
    proc, clock = hub
    env = command()
    assert (await proc.process([record(env, 0)])).retried == 1
    for _ in range(2):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    (dead,) = outbox(engine, Topics.ERP_COMMANDS.dlq)
    headers = load_headers(dead.headers)
    assert header(headers, "x-dlq-reason") == "retries-exhausted"
    assert header(headers, "x-dlq-attempts") == "3"
    assert "network" in (header(headers, "x-dlq-error-message") or "")
    assert outbox(engine, Topics.ERP_EVENTS.name) == []

    with ErpPeer(port=port) as erp:
        replay = [(H_REPLAY, b"proc.erp.commands.dlq/0/0")]
        await proc.process([record(env, 7, replay)])
        await proc.process([record(env, 8, replay)])  # a second replay is a duplicate
        assert erp.ledger.count() == 1
    (event,) = outbox(engine, Topics.ERP_EVENTS.name)
    registered = decode(event.value, load_headers(event.headers))
    assert registered.type == "erp.registered"
    assert registered.causation_id == env.message_id


async def test_erp_maintenance_holds_until_it_ends(hub: tuple[Processor, Clock],
                                                    engine: Engine, port: int) -> None:
    proc, clock = hub
    proc.failures.max_attempts = 1  # a counted failure would dead-letter at once
    with ErpPeer(port=port) as erp:
        until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        erp.state.maintenance_until = until
        await proc.process([record(command(), 0)])
        with engine.connect() as conn:
            row = conn.execute(sa.select(RETRIES)).one()
        assert row.attempt == 0
        assert abs((row.due_at.replace(tzinfo=UTC) - until).total_seconds()) < 1
        erp.state.maintenance_until = None
        clock.now = until + timedelta(seconds=1)
        await proc.run_due_retries()
        assert erp.ledger.count() == 1
    assert len(outbox(engine, Topics.ERP_EVENTS.name)) == 1
    assert outbox(engine, Topics.ERP_COMMANDS.dlq) == []


async def test_refusal_is_a_rejection_and_a_new_command_for_the_same_key_is_a_duplicate(
        hub: tuple[Processor, Clock], engine: Engine, port: int) -> None:
    proc, _ = hub
    with ErpPeer(port=port) as erp:
        await proc.process([record(command(ErpRegistrationKind.PAYMENT, "R8-404"), 0)])
        await proc.process([record(command(), 1), record(command(), 2)])
        assert erp.ledger.count() == 1
    rejected, first, again = (decode(e.value, load_headers(e.headers))
                              for e in outbox(engine, Topics.ERP_EVENTS.name))
    assert rejected.type == "erp.registration-rejected"
    assert rejected.payload.violations[0].rule_id == "INV-3"
    assert (first.payload.duplicate, again.payload.duplicate) == (False, True)
    assert first.payload.erp_reference == again.payload.erp_reference
    assert outbox(engine, Topics.ERP_COMMANDS.dlq) == []
