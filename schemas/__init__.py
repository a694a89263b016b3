"""Canonical procurement message contracts (pydantic v2).

Every message on the hub's Kafka topics is an :class:`~schemas.envelope.Envelope`
around a versioned payload. Payload classes register themselves with
:func:`~schemas.registry.message` under a ``(type, version)`` pair; a breaking
change is a new version, registered beside the old one until it is retired.
"""

from schemas.envelope import JST, Envelope, new_envelope
from schemas.registry import REGISTRY, Payload, message

__all__ = ["JST", "REGISTRY", "Envelope", "Payload", "message", "new_envelope"]
