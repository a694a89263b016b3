"""The shape of a connector as a hub consumer effect (``hub.consumers.Effect``).

Each connector package has an ``effects.py`` with ``effects(connector)``: a map
from the command payload type to an async ``(ctx, envelope)`` function that
calls the peer and emits the canonical answer through ``ctx.emit`` (the hub's
outbox). A refusal that names rules is a business answer: the effect emits the
connector's rejection event instead of raising. Everything else is raised as the
connector classified it, and the hub acts on it (retry, hold until ``retry_at``,
dead-letter). No import of ``hub``: dependencies point from the hub to the
connectors, so the context is described here structurally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import TopicSpec

__all__ = ["Effect", "Emitter"]


class Emitter(Protocol):
    """What an effect needs of the hub's context (``hub.consumers.EffectContext``)."""

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]: ...


Effect = Callable[[Emitter, Envelope[Any]], Awaitable[None]]
