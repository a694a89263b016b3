"""How a connector declares itself to the hub: a :class:`ConnectorPlugin`.

A connector package, built in or installed from elsewhere, publishes one
``ConnectorPlugin`` under the entry point group ``procurement_hub.connectors``
(``[project.entry-points."procurement_hub.connectors"]`` in its pyproject.toml,
``name = "package.module:PLUGIN"``). ``hub run`` discovers every installed one and
runs it as the consumer ``connector.<name>``; ``hub topics apply`` creates the
topics it declares, each with its dead-letter twin. No import of ``hub``: the hub
reads this declaration, the connector never reads the hub.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from connectors._shared.effects import Effect
from connectors._shared.health import Health
from connectors._shared.settings import ConnectorSettings
from schemas.registry import Payload
from schemas.topics import TopicSpec

__all__ = ["ENTRY_POINT_GROUP", "ConnectorPlugin", "PluginConnector"]

ENTRY_POINT_GROUP = "procurement_hub.connectors"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


@runtime_checkable
class PluginConnector(Protocol):
    """What the hub calls on a running connector besides its effects."""

    async def health(self) -> Health: ...


@dataclass(frozen=True)
class ConnectorPlugin:
    """One connector as the hub sees it.

    ``consumes`` are the topics its consumer reads (the command topic); ``topics`` are
    the topics it declares itself (created by ``hub topics apply`` when they are not the
    hub's own); ``emits`` says where its effects publish what, for the AsyncAPI document.
    ``build(settings)`` makes the connector from its settings (read from the environment
    under the settings class's own prefix), ``effects(connector)`` maps each payload type
    it consumes to an async effect. The connector may expose a ``guard``
    (:class:`~connectors._shared.base.Guard`): its breaker and maintenance calendar are
    then reported by the control API, and an ``aclose()`` called at shutdown.
    """

    name: str
    description: str
    settings: type[ConnectorSettings]
    consumes: tuple[TopicSpec, ...]
    build: Callable[[Any], PluginConnector]
    effects: Callable[[Any], Mapping[type[Payload], Effect]]
    topics: tuple[TopicSpec, ...] = ()
    emits: tuple[tuple[TopicSpec, tuple[type[Payload], ...]], ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"connector name {self.name!r}: lower-case letters, digits and "
                             "'-', starting with a letter, at most 40 characters")
        if not self.consumes:
            raise ValueError(f"connector {self.name!r} consumes no topic")

    @property
    def consumer_name(self) -> str:
        """Its consumer group's name (and idempotency scope) in the hub."""
        return f"connector.{self.name}"

    def declared_topics(self) -> tuple[TopicSpec, ...]:
        """Every topic it names (consumed, emitted, declared), each once."""
        found: dict[str, TopicSpec] = {}
        for spec in (*self.topics, *self.consumes, *(t for t, _ in self.emits)):
            found.setdefault(spec.name, spec)
        return tuple(found.values())
