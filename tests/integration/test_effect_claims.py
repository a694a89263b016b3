"""A connector's outside call is made once even when two consumers hold the same message
at the same time (a partition revoked in a rebalance while its batch is still in flight,
its new owner reading the same records), and a claim whose process died is taken over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.consumers import ConsumerSpec
from hub.db import ProcessedMessage, ProcessedOutcome
from hub.delivery import Delivery
from hub.processing import Processor
from hub.settings import RetrySettings
from schemas.envelope import Envelope, new_envelope
from schemas.mail import MailKind, MailRequested, MailSent
from schemas.topics import Topics
from schemas.wire import encode

pytestmark = [pytest.mark.postgres]

PROCESSED = ProcessedMessage.__table__  # type: ignore[attr-defined]


class Peer:
    """The outside system: counts the calls; each waits until the test lets it go."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, ctx: Any, envelope: Envelope[Any]) -> None:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        ctx.emit(Topics.MAIL_EVENTS, MailSent(mail_id=envelope.payload.mail_id,
                                              smtp_message_id="<x@hub>"), cause=envelope)


def mail() -> Delivery:
    env = new_envelope(MailRequested(mail_id=uuid.uuid4(), kind=MailKind.GENERIC,
                                     to=("a@example.jp",),
                                     values={"subject": "s", "body_1": "b"}),
                       correlation_id="c-1", procuring_entity="ashikaga-city", producer="t")
    key, value, headers = encode(env)
    return Delivery(topic=Topics.MAIL_REQUESTS.name, partition=0, offset=1, key=key,
                    value=value, headers=headers)


def processor(engine: Engine, peer: Peer, claim_s: float = 30.0) -> Processor:
    spec = ConsumerSpec("connector.mail", (Topics.MAIL_REQUESTS,),
                        handlers={MailRequested: peer.send})
    return Processor(spec, engine, RetrySettings(max_attempts=2, effect_claim_s=claim_s),
                     producer="test")


async def test_two_consumers_holding_one_message_call_the_peer_once(engine: Engine) -> None:
    peer = Peer()
    d = mail()
    old_owner, new_owner = processor(engine, peer), processor(engine, peer)
    first = asyncio.create_task(old_owner.process([d]))
    await asyncio.wait_for(peer.entered.wait(), 10)
    second = asyncio.create_task(new_owner.process([d]))  # the same record, at the same time
    with engine.connect() as conn:
        assert conn.execute(sa.select(PROCESSED.c.outcome)).scalar() == ProcessedOutcome.CLAIMED
    peer.release.set()
    reports = await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert peer.calls == 1
    assert sorted((r.done, r.duplicate) for r in reports) == [(0, 1), (1, 0)]
    with engine.connect() as conn:
        assert conn.execute(sa.select(PROCESSED.c.outcome)).scalar() == "done"


async def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_time(
        engine: Engine) -> None:
    d = mail()
    with engine.begin() as conn:  # claimed by a process that was SIGKILLed mid-call
        conn.execute(sa.insert(PROCESSED).values(
            consumer="connector.mail", message_id=str(d.dedupe_id),
            outcome=ProcessedOutcome.CLAIMED,
            processed_at=datetime.now(UTC) - timedelta(seconds=5)))
    peer = Peer()
    peer.release.set()
    fresh = await asyncio.wait_for(processor(engine, peer, claim_s=2.0).process([d]), 30)
    assert (fresh.done, peer.calls) == (1, 1)
    # a claim younger than its time is waited for, not taken
    d2 = mail()
    with engine.begin() as conn:
        conn.execute(sa.insert(PROCESSED).values(
            consumer="connector.mail", message_id=str(d2.dedupe_id),
            outcome=ProcessedOutcome.CLAIMED,
            processed_at=datetime.now(UTC)))
    waiting = asyncio.create_task(processor(engine, peer, claim_s=60.0).process([d2]))
    await asyncio.sleep(0)
    with engine.begin() as conn:  # the claimer finishes
        conn.execute(sa.update(PROCESSED).where(PROCESSED.c.message_id == str(d2.dedupe_id))
                     .values(outcome="done"))
    report = await asyncio.wait_for(waiting, 30)
    assert (report.duplicate, peer.calls) == (1, 1)
