"""Publishing from outside a consumer (webhooks, the gateway, jobs, the demo).

Writes go through the outbox like everything else, so a publish survives a crash
between the write and Kafka; once a relay is attached, the records are handed to it
at once instead of waiting for its poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from hub.db import transaction
from hub.outbox import OutboxRelay, PendingRecord, insert_records, record_row
from schemas.envelope import Envelope, utc_now
from schemas.topics import TopicSpec

__all__ = ["OutboxPublisher"]


class OutboxPublisher:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.relay: OutboxRelay | None = None

    def attach(self, relay: OutboxRelay) -> None:
        self.relay = relay

    async def publish(self, topic: TopicSpec, *envelopes: Envelope[Any]) -> None:
        records = await asyncio.to_thread(self._write, topic, envelopes)
        if self.relay is not None:
            self.relay.dispatch(records)

    def _write(self, topic: TopicSpec, envelopes: Sequence[Envelope[Any]]) -> list[PendingRecord]:
        now = utc_now()
        with transaction(self.engine) as session:
            return insert_records(session, [record_row(topic, e, now) for e in envelopes])
