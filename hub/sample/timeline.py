"""The events of a case as they come back from Kafka, printed as a readable timeline.

A plain consumer without a group (it commits nothing and disturbs no pipeline) reads
the watched topics from their end, keeps the envelopes whose correlation id belongs to
the case or its contractor, and lets the driver wait for the next event it expects.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from hub.dlq import partitions_of
from hub.settings import KafkaSettings
from schemas.envelope import JST, Envelope
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec
from schemas.wire import WireError, decode

# decode() knows a message type only once its module is imported: the watched topics'
# types, so that a timeline in a process without the hub's wiring drops none of them.
for _module in ("case", "contract", "erp", "mail", "registration", "surety"):
    importlib.import_module(f"schemas.{_module}")

__all__ = ["WATCHED", "CaseTimeline", "describe"]

WATCHED: tuple[TopicSpec, ...] = (
    Topics.REGISTRATION_EVENTS, Topics.CASE_EVENTS, Topics.CONTRACT_EVENTS,
    Topics.SURETY_EVENTS, Topics.ERP_EVENTS, Topics.MAIL_EVENTS)
"""Where a case's outcomes appear (commands are the driver's own, not shown)."""


@dataclass
class CaseTimeline:
    """Events of the watched keys, in arrival order; ``echo`` prints each line."""

    kafka: KafkaSettings
    keys: set[str]
    echo: Callable[[str], None] | None = print
    topics: Iterable[TopicSpec] = WATCHED
    seen: list[tuple[str, Envelope[Any]]] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self.kafka.aiokafka_kwargs(), group_id=None,
                                          enable_auto_commit=False)
        await self._consumer.start()
        parts = await partitions_of(self._consumer, [t.name for t in self.topics])
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before anything is published
            await self._consumer.position(tp)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def find(self, message_type: str, where: Callable[[Envelope[Any]], bool] = lambda _: True,
             ) -> Envelope[Any] | None:
        return next((env for _, env in self.seen if env.type == message_type and where(env)),
                    None)

    def count(self, message_type: str,
              where: Callable[[Envelope[Any]], bool] = lambda _: True) -> int:
        return sum(1 for _, env in self.seen if env.type == message_type and where(env))

    async def wait_for(self, message_type: str, timeout_s: float = 60,
                       where: Callable[[Envelope[Any]], bool] = lambda _: True,
                       ) -> Envelope[Any]:
        """The first event of ``message_type`` (already seen or still to come)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (found := self.find(message_type, where)) is None:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {message_type} within {timeout_s:.0f} s")
            await self.poll(min(left, 0.5))
        return found

    async def poll(self, timeout_s: float) -> None:
        """Read what arrived within ``timeout_s``."""
        assert self._consumer is not None, "start() the timeline first"
        batch = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        for records in batch.values():
            for r in records:
                try:
                    env = decode(r.value, r.headers)
                except WireError:
                    continue
                if env.correlation_id in self.keys:
                    self.seen.append((r.topic, env))
                    if self.echo is not None:
                        self.echo(line(r.topic, env))


def line(topic: str, env: Envelope[Any]) -> str:
    at = env.occurred_at.astimezone(JST).strftime("%H:%M:%S.%f")[:-3]
    return f"  {at} JST  {topic:<24} {env.type:<38} {describe(env.payload)}"


_PICKS = ("company_id", "status", "agreed", "kind", "erp_reference", "business_key",
          "product", "contract_number", "smtp_message_id", "duplicate", "subject")


def describe(p: Payload) -> str:
    """One short line of what matters in an event."""
    d = p.model_dump(mode="json")
    if "violations" in d:
        return "REJECTED " + "; ".join(f"{v['rule_id']} {v['message_ja']}" for v in d["violations"])
    parts = [f"{k}={d[k]}" for k in _PICKS if d.get(k) not in (None, "")]
    if isinstance(d.get("card"), dict):
        parts.append(f"card serial={d['card']['serial']}")
    if isinstance(d.get("certificate"), dict):
        c = d["certificate"]
        parts.append(f"保証契約番号={c.get('contract_number')} "
                     f"保証金額={c.get('guarantee_amount')}")
    if isinstance(d.get("to"), list):
        parts.append(f"to={','.join(str(x) for x in d['to'])}")
    if "agreed" in d and "parties" in d:
        parts.append(f"({d['agreed']}/{d['parties']} agreed)")
    return " ".join(parts)[:160]
