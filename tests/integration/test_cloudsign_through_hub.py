"""CloudSign contract steps through the hub's idempotent consumer (CON-2, CON-6).

Send → ContractSent; the completion webhook, published as ContractCompletionNotified,
→ ContractConcluded keyed by the case; a forged webhook publishes nothing; a slow
CloudSign is retried, then dead-lettered with the reason.
Real processor, real database (SQLite file, PostgreSQL), reference CloudSign on loopback.
"""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from reportlab.pdfgen import canvas
from sqlalchemy.engine import Engine

from connectors.cloudsign import CloudSignConnector, CloudSignSettings
from connectors.cloudsign.effects import effects
from connectors.cloudsign.peer import CloudSignPeer
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord
from hub.delivery import Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.cloudsign import ContractCompletionNotified, ContractParticipant, ContractSendRequested
from schemas.envelope import new_envelope
from schemas.registry import Payload
from schemas.topics import Topics
from schemas.wire import decode, encode, header
from tests.support.processing import Clock

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__
CLIENT_ID = "hub-cloudsign-client"


@pytest.fixture
def peer() -> Iterator[CloudSignPeer]:
    server = CloudSignPeer(client_id=CLIENT_ID)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def setup(engine: Engine, peer: CloudSignPeer, tmp_path: Path
                ) -> AsyncIterator[tuple[Processor, Clock, CloudSignConnector]]:
    conn = CloudSignConnector(CloudSignSettings(
        base_url=peer.url, client_id=CLIENT_ID, document_dir=tmp_path,  # type: ignore[arg-type]
        timeout_s=0.5, retry_attempts=2, retry_base_s=0.01, retry_max_s=0.02,
        breaker_failures=50))
    clock = Clock()
    spec = ConsumerSpec("connector.cloudsign", (Topics.CONTRACT_COMMANDS,),
                        handlers=effects(conn))
    yield Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                    producer="test", clock=clock, rng=random.Random(11)), clock, conn
    await conn.aclose()


def record(payload: Payload, offset: int, correlation_id: str = "R5-0001") -> Delivery:
    env = new_envelope(payload, correlation_id=correlation_id, procuring_entity="ashikaga-city",
                       producer="test")
    key, value, headers = encode(env)
    return Delivery(topic=Topics.CONTRACT_COMMANDS.name, partition=0, offset=offset, key=key,
                    value=value, headers=headers)


def events(engine: Engine, topic: str = Topics.CONTRACT_EVENTS.name) -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == topic).order_by(OUTBOX.c.id))
        return [decode(r.value, load_headers(r.headers)) if topic.endswith("events") else r
                for r in rows]


def send_request(conn: CloudSignConnector) -> ContractSendRequested:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(60, 780, "contract")
    pdf.save()
    return ContractSendRequested(
        request_id=uuid.uuid4(), case_id="R5-0001", title="請負契約書",
        files=(conn.store.put("請負契約書.pdf", buffer.getvalue()),),
        participants=(ContractParticipant(name="足利 一郎", email="ichiro@example.co.jp"),))


async def test_send_then_completion_publishes_sent_and_concluded(
        peer: CloudSignPeer, setup: Any, engine: Engine) -> None:
    proc, _, conn = setup
    await proc.process([record(send_request(conn), 0)])
    (sent,) = events(engine)
    document_id = sent.payload.document_id
    await proc.process([record(ContractCompletionNotified(
        document_id=document_id, case_id="R5-0001", status=1), 1)])
    assert len(events(engine)) == 1  # a bounce notice: nothing is concluded yet
    peer.agree_all(document_id, notify=False)
    await proc.process([record(ContractCompletionNotified(
        document_id=document_id, case_id="R5-0001", status=2), 2)])
    concluded = events(engine)[-1]
    assert concluded.type == "contract.concluded"
    assert concluded.correlation_id == "R5-0001"
    assert conn.store.get(concluded.payload.certificate).startswith(b"%PDF-")


async def test_slow_cloudsign_is_dead_lettered_with_the_reason(
        peer: CloudSignPeer, setup: Any, engine: Engine) -> None:
    proc, clock, conn = setup
    peer.faults.slow_s = 0.8
    await proc.process([record(send_request(conn), 0)])
    for _ in range(2):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    (dead,) = events(engine, Topics.CONTRACT_COMMANDS.dlq)
    assert "timeout" in (header(load_headers(dead.headers), "x-dlq-error-message") or "")
    assert events(engine) == []
