"""One record to handle, whether it came from Kafka or from the retry table.

Decoding happens once, here; a record that is not a canonical message carries its
:class:`~schemas.wire.WireError` instead of an envelope, and is dead-lettered
with that reason instead of stopping the consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from schemas.envelope import Envelope
from schemas.wire import Headers, PoisonReason, WireError, decode, header

__all__ = ["H_REPLAY", "Delivery"]

H_REPLAY = "x-hub-replay-of"
"""Set by ``hub dlq replay``: this record is a dead letter sent back for another try."""


@dataclass(eq=False)
class Delivery:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    attempt: int = 0
    """Failures so far (0 for a first delivery)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    retry_id: int | None = None
    """The ``hub_scheduled_retry`` row this delivery comes from, if any."""
    unresolved_claim: str | None = None
    """A claim-check pointer whose value is no longer stored (hub/claimcheck.py)."""

    @cached_property
    def decoded(self) -> Envelope[Any] | WireError:
        if self.unresolved_claim is not None:
            return WireError(PoisonReason.OVERSIZE, f"the value stored by reference "
                             f"({self.unresolved_claim}) is no longer in the hub's database")
        try:
            return decode(self.value, self.headers)
        except WireError as exc:
            return exc

    @cached_property
    def dedupe_id(self) -> str:
        """The message id, or the record's position for a record without one."""
        env = self.decoded
        if isinstance(env, Envelope):
            return str(env.message_id)
        return f"kafka:{self.topic}:{self.partition}:{self.offset}"

    @property
    def is_replay(self) -> bool:
        return header(self.headers, H_REPLAY) is not None

    @classmethod
    def from_record(cls, record: Any) -> Delivery:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers or ()),
        )
