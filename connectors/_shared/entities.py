"""Each procuring entity's own connectors: a message goes to its entity's peer, or nowhere.

A joint installation serves many procuring entities, each with its own ERP, signer, mail
sender and CloudSign team. :func:`per_entity` turns one connector's effects per entity into
one set of effects that picks by the envelope's ``procuring_entity``. A message of an
entity with no connector configured is never sent to another entity's peer and never to a
default: it fails permanently (:class:`EntityNotConfiguredError`), so it is dead-lettered
at once with the entity and the connector named, and can be replayed once the entity is
configured (docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors._shared.errors import PermanentPeerError
from schemas.envelope import Envelope
from schemas.registry import Payload

__all__ = ["EntityNotConfiguredError", "per_entity"]


class EntityNotConfiguredError(PermanentPeerError):
    """No connector of this kind is configured for the message's procuring entity."""

    def __init__(self, connector: str, entity: str) -> None:
        super().__init__(connector, f"no {connector} connector is configured for the "
                         f"procuring entity {entity!r}; configure entities.{entity}."
                         f"{connector} and replay this dead letter")
        self.entity = entity


def per_entity(connector: str, by_entity: Mapping[str, Mapping[type[Payload], Effect]]
               ) -> dict[type[Payload], Effect]:
    """One effect per payload type, dispatching on the envelope's procuring entity."""
    types = {t for effects in by_entity.values() for t in effects}

    def dispatch(payload_type: type[Payload]) -> Effect:
        async def effect(ctx: Emitter, envelope: Envelope[Any]) -> None:
            effects = by_entity.get(envelope.procuring_entity)
            if effects is None or payload_type not in effects:
                raise EntityNotConfiguredError(connector, envelope.procuring_entity)
            await effects[payload_type](ctx, envelope)
        return effect

    return {t: dispatch(t) for t in types}
