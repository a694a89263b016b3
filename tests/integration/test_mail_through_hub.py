"""Mail through the hub's idempotent consumer: an SMTP outage is retried and loses nothing.

The mail connector's effect runs in the hub's real processor against a real
database (SQLite file and PostgreSQL) and a real SMTP server (aiosmtpd) on
loopback: an outage is retried, then dead-lettered to ``proc.mail.requests.dlq``
with the reason and the history; once the relay is back, the replayed dead
letter is sent, once. A relay maintenance window holds the mail without using a
try (WIN-2), and a request refused for a rule becomes a MailFailed event.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors._shared import Guard
from connectors.mail import DirectoryDocumentStore, MailConnector, MailSettings
from connectors.mail.effects import effects
from connectors.mail.peer import SmtpPeer, free_port
from hub.consumers import ConsumerSpec
from hub.db import OutboxRecord, ScheduledRetry
from hub.delivery import H_REPLAY, Delivery
from hub.outbox import load_headers
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.envelope import JST, new_envelope
from schemas.mail import MailKind, MailRequested
from schemas.topics import Topics
from schemas.wire import decode, encode, header
from tests.support.processing import Clock
from tests.support.processing import outbox_rows as outbox

pytestmark = [pytest.mark.smtp, pytest.mark.postgres]

OUTBOX = OutboxRecord.__table__
RETRIES = ScheduledRetry.__table__
VALUES = {"procuring_entity_name": "埼玉県", "company_name": "○○建設株式会社",
          "company_id": "1234567890123456",
          "contact_name": "埼玉 太郎", "contact_address": "埼玉県さいたま市○○1丁目23番地"}


def hub_for(engine: Engine, port: int, tmp_path: Path, clock: Clock,
            maintenance: tuple[str, ...] = ()) -> Processor:
    settings = MailSettings(port=port, timeout_s=1.0, retry_attempts=2, retry_base_s=0.01,
                            retry_max_s=0.02, breaker_failures=50, documents_dir=tmp_path,
                            maintenance=maintenance)
    guard = Guard("mail", policy=settings.retry_policy(), breaker=settings.circuit_breaker(),
                  calendar=settings.calendar(), timeout_s=settings.timeout_s, now=clock)
    connector = MailConnector(settings, guard=guard, now=clock, documents=DirectoryDocumentStore(
        tmp_path, "http://127.0.0.1/documents", b"hub-test-signing-key-0123456789"))
    spec = ConsumerSpec("connector.mail", (Topics.MAIL_REQUESTS,), handlers=effects(connector))
    return Processor(spec, engine, RetrySettings(max_attempts=3, base_delay_s=1, jitter=0.2),
                     producer="test", clock=clock, rng=random.Random(3))


def mail(**values: str) -> Any:
    request = MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION,
                            to=("taro@kensetsu.example",), values={**VALUES, **values})
    return new_envelope(request, correlation_id=str(request.mail_id),
                        procuring_entity="saitama-pref", producer="test")


def record(env: Any, offset: int, extra: list[tuple[str, bytes]] | None = None) -> Delivery:
    key, value, headers = encode(env)
    return Delivery(topic=Topics.MAIL_REQUESTS.name, partition=0, offset=offset,
                    key=key, value=value, headers=headers + (extra or []))


async def test_outage_dead_letters_with_reason_and_replay_sends_once(
        engine: Engine, tmp_path: Path) -> None:
    clock, port = Clock(), free_port()
    proc = hub_for(engine, port, tmp_path, clock)
    env = mail()
    report = await proc.process([record(env, 0)])
    assert report.retried == 1
    for _ in range(2):
        clock.now += timedelta(minutes=10)
        await proc.run_due_retries()
    (dead,) = outbox(engine, Topics.MAIL_REQUESTS.dlq)
    headers = load_headers(dead.headers)
    assert header(headers, "x-dlq-reason") == "retries-exhausted"
    assert header(headers, "x-dlq-attempts") == "3"
    assert "refused" in (header(headers, "x-dlq-error-message") or "").lower()
    assert outbox(engine, Topics.MAIL_EVENTS.name) == []

    with SmtpPeer(port=port) as relay:
        replay = [(H_REPLAY, b"proc.mail.requests.dlq/0/0")]
        await proc.process([record(env, 7, replay)])
        await proc.process([record(env, 8, replay)])  # a second replay is a duplicate
        (event,) = outbox(engine, Topics.MAIL_EVENTS.name)
        assert len(relay.wait_for(1)) == 1
    sent = decode(event.value, load_headers(event.headers))
    assert sent.type == "mail.sent"
    assert sent.causation_id == env.message_id
    assert relay.received[0].message_id == sent.payload.smtp_message_id


async def test_maintenance_window_holds_the_mail_until_it_ends(
        engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    begin, end = clock.now - timedelta(minutes=1), clock.now + timedelta(hours=2)
    window = f"fixed {begin.astimezone(JST).isoformat()} {end.astimezone(JST).isoformat()}"
    with SmtpPeer() as relay:
        proc = hub_for(engine, relay.port, tmp_path, clock, maintenance=(window,))
        proc.failures.max_attempts = 1  # a counted failure would dead-letter at once
        await proc.process([record(mail(), 0)])
        with engine.connect() as conn:
            row = conn.execute(sa.select(RETRIES)).one()
        assert row.attempt == 0
        assert abs((row.due_at.replace(tzinfo=UTC) - end).total_seconds()) < 1
        assert relay.received == []
        clock.now = end + timedelta(seconds=1)
        await proc.run_due_retries()
        assert len(relay.wait_for(1)) == 1
    assert len(outbox(engine, Topics.MAIL_EVENTS.name)) == 1
    assert outbox(engine, Topics.MAIL_REQUESTS.dlq) == []


async def test_refused_request_is_a_mail_failed_event(engine: Engine, tmp_path: Path) -> None:
    with SmtpPeer() as relay:
        proc = hub_for(engine, relay.port, tmp_path, Clock())
        await proc.process([record(mail(contact_name="太郎\r\nBcc: x@evil.example"), 0)])
        assert relay.received == []
    (event,) = outbox(engine, Topics.MAIL_EVENTS.name)
    failed = decode(event.value, load_headers(event.headers))
    assert failed.type == "mail.failed"
    assert failed.payload.reason.startswith("REG-10")
    assert outbox(engine, Topics.MAIL_REQUESTS.dlq) == []
