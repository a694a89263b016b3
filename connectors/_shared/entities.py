"""Each procuring entity's own connectors: a message goes to its entity's peer, or nowhere.

A joint installation serves many procuring entities, each with its own ERP, signer, mail
sender and CloudSign team. :func:`per_entity` turns one connector's effects per entity into
one set of effects that picks by the envelope's ``procuring_entity``. A message of an
entity with no connector configured is never sent to another entity's peer and never to a
default: it fails permanently (:class:`EntityNotConfiguredError`, rule IAM-4), so it is
dead-lettered at once with the entity and the connector named and what to do in Japanese
and English, and can be replayed once the entity is configured (docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors._shared.errors import PermanentPeerError
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.rejection import RuleViolation

__all__ = ["ENTITY_RULE", "EntityNotConfiguredError", "not_configured", "per_entity"]


ENTITY_RULE = "IAM-4"
"""A procuring entity's messages go to its own connectors only (docs/rule-ids.md)."""


def not_configured(connector: str, entity: str) -> RuleViolation:
    """IAM-4: what the administrator does about an entity with no such connector."""
    return RuleViolation(
        rule_id=ENTITY_RULE,
        message_ja=f"調達機関「{entity}」の {connector} の接続先が設定されていません。"
                   "他の機関の接続先には送りません。",
        message_en=f"No {connector} connector is configured for the procuring entity "
                   f"{entity!r}; the message is not sent to another entity's.",
        next_step_ja=f"管理者が entities.{entity}.{connector} を設定し、hub dlq replay で"
                     "このメッセージを再処理してください。",
        next_step_en=f"An administrator configures entities.{entity}.{connector}, then "
                     "replays this dead letter with `hub dlq replay`.")


class EntityNotConfiguredError(PermanentPeerError):
    """No connector of this kind is configured for the message's procuring entity (IAM-4)."""

    def __init__(self, connector: str, entity: str) -> None:
        super().__init__(connector, f"{ENTITY_RULE}: no {connector} connector is configured "
                         f"for the procuring entity {entity!r}; configure entities.{entity}."
                         f"{connector} and replay this dead letter",
                         (not_configured(connector, entity),))
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
