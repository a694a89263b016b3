"""What a consumer is: a name, the topics it reads, and a handler per payload type.

Two kinds of handler:
- a *transactional handler* ``(ctx, envelope) -> None`` (pipelines/ports.py): runs in
  the batch's database transaction, so its state changes, its emitted events and
  the processed-marker commit together (exactly-once effects);
- an *effect* ``async (ctx, envelope) -> None`` for connectors that call a system
  outside (SMTP, SOAP, HTTP): the call happens first, then its emitted events and
  the processed-marker commit together. The outside call itself is at-least-once,
  so each connector passes an idempotency key to its peer.

A consumer may also give ``prepare(session, envelopes) -> BatchState``: called once per
batch inside its transaction (before the handlers, with the envelopes about to be
handled; a one-message list on the per-message path), so that a pipeline can load the
state of the whole batch in a few queries. Handlers find it as ``ctx.prepared``; its
``finish(session)`` runs after the last handler, still in the transaction (bulk writes).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from pipelines.ports import Handler
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import TopicSpec

__all__ = ["BatchState", "ConsumerSpec", "Effect", "EffectContext", "Prepare"]


class EffectContext(Protocol):
    @property
    def now(self) -> datetime: ...

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]: ...


Effect = Callable[[EffectContext, Envelope[Any]], Awaitable[None]]


class BatchState(Protocol):
    """What ``prepare`` returns: one batch's shared state, written back by ``finish``."""

    def finish(self, session: Session) -> None: ...


Prepare = Callable[[Session, Sequence[Envelope[Any]]], BatchState]


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group of the hub. Its name is also its idempotency scope."""

    name: str
    topics: tuple[TopicSpec, ...]
    handlers: Mapping[type[Payload], Handler | Effect] = field(default_factory=dict)
    description: str = ""
    max_attempts: int | None = None
    """Overrides the hub-wide retry setting for this consumer."""
    emits: tuple[tuple[TopicSpec, tuple[type[Payload], ...]], ...] = ()
    """Where its handlers publish, and what (for the AsyncAPI document)."""
    prepare: Prepare | None = None
    """Loads a batch's state for its transactional handlers at once (see above)."""
    batch_max_records: int | None = None
    """Overrides ``KafkaSettings.batch_max_records`` for this consumer: a pipeline whose
    batch reads and writes its state in a few statements (``prepare``) pays those
    statements, its commit and its thread hop once per batch, so larger batches pay off.
    Batches only grow under a backlog; when idle, each holds what has arrived."""

    def handler_for(self, payload: Payload) -> Handler | Effect | None:
        return self.handlers.get(type(payload))

    @staticmethod
    def is_effect(handler: Handler | Effect) -> bool:
        return inspect.iscoroutinefunction(handler)
