"""The connector registry: every installed connector plugin, typed.

Connectors declare themselves with a :class:`~connectors._shared.plugin.ConnectorPlugin`
under the entry point group ``procurement_hub.connectors`` (docs/connectors.md). The
built-in ones are declared the same way in the hub's pyproject.toml; should the installed
metadata predate them (an editable install not re-installed), they are still found from
:data:`BUILT_IN`, with a warning. A plugin that cannot be loaded is logged and left out:
one broken package does not stop the others.

:meth:`ConnectorRegistry.start` builds each connector from its settings and returns a
:class:`RunningConnector` per plugin: the connector, its consumer, and what the control
API reports (last error, restarts).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors._shared.plugin import ENTRY_POINT_GROUP, ConnectorPlugin, PluginConnector
from hub.consumers import ConsumerSpec
from hub.logs import redact_text
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "BUILT_IN",
    "ConnectorRegistry",
    "LastError",
    "PluginError",
    "RunningConnector",
    "all_topics",
]

log = logging.getLogger(__name__)

BUILT_IN: Mapping[str, str] = {
    "mail": "connectors.mail.plugin:PLUGIN",
    "erp": "connectors.erp.plugin:PLUGIN",
    "dsure": "connectors.dsure.plugin:PLUGIN",
    "application": "connectors.application.plugin:PLUGIN",
    "cloudsign": "connectors.cloudsign.plugin:PLUGIN",
}
"""The hub's own connectors, as its pyproject.toml declares them."""


class PluginError(Exception):
    """A plugin that cannot be used: not a ConnectorPlugin, or a name taken twice."""


def _load(ref: str) -> ConnectorPlugin:
    module_name, _, attr = ref.partition(":")
    found: Any = getattr(importlib.import_module(module_name), attr or "PLUGIN")
    if callable(found) and not isinstance(found, ConnectorPlugin):
        found = found()
    if not isinstance(found, ConnectorPlugin):
        raise PluginError(f"{ref} is a {type(found).__name__}, not a ConnectorPlugin")
    return found


@dataclass
class LastError:
    at: datetime
    kind: str
    detail: str


@dataclass
class RunningConnector:
    """One connector in this process: its plugin, the live connector, its consumer."""

    plugin: ConnectorPlugin
    connector: PluginConnector
    spec: ConsumerSpec
    last_error: LastError | None = None
    restarts: int = 0
    _handlers: dict[type[Payload], Effect] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.plugin.name

    def _bind(self) -> None:
        """Point the consumer's handlers at the current connector (the spec's mapping is
        this dict, so a restart swaps them in place)."""
        self._handlers.clear()
        for payload_type, effect in self.plugin.effects(self.connector).items():
            self._handlers[payload_type] = self._watched(effect)

    def _watched(self, effect: Effect) -> Effect:
        async def run(ctx: Emitter, envelope: Envelope[Any]) -> None:
            try:
                await effect(ctx, envelope)
            except Exception as exc:
                self.last_error = LastError(datetime.now(UTC), type(exc).__name__,
                                            redact_text(str(exc))[:300])
                raise

        return run

    async def restart(self) -> None:
        """A fresh connector from its settings (a new client, a closed breaker)."""
        old = self.connector
        self.connector = self.plugin.build(self.plugin.settings())
        self._bind()
        self.last_error = None
        self.restarts += 1
        await _close(old)

    async def close(self) -> None:
        await _close(self.connector)


async def _close(connector: Any) -> None:
    close = getattr(connector, "aclose", None)
    if close is None:
        return
    try:
        result = close()
        if hasattr(result, "__await__"):
            await result
    except Exception:
        log.exception("closing connector %r failed", connector)


class ConnectorRegistry:
    """The connector plugins of this hub, by name."""

    def __init__(self, plugins: Iterable[ConnectorPlugin]) -> None:
        self._plugins: dict[str, ConnectorPlugin] = {}
        for plugin in plugins:
            if plugin.name in self._plugins:
                raise PluginError(f"two connector plugins are named {plugin.name!r}")
            self._plugins[plugin.name] = plugin
        self.running: dict[str, RunningConnector] = {}

    @classmethod
    def discover(cls, *, only: Sequence[str] | None = None) -> ConnectorRegistry:
        """The installed plugins (entry points), plus any built-in one their metadata
        lacks. ``only`` keeps those names (``HUB_CONNECTORS``)."""
        refs: dict[str, str] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            refs.setdefault(ep.name, ep.value)
        for name, ref in BUILT_IN.items():
            if name not in refs:
                log.warning("connector %s: no entry point installed (re-install the hub "
                            "package); loaded from %s", name, ref)
                refs[name] = ref
        plugins = []
        for name, ref in refs.items():
            if only is not None and name not in only:
                continue
            try:
                plugin = _load(ref)
            except Exception as exc:
                log.error("connector plugin %s (%s) cannot be loaded and is left out: %s",
                          name, ref, redact_text(f"{type(exc).__name__}: {exc}")[:300])
                continue
            if plugin.name != name:
                log.warning("connector plugin %s declares the name %s; it runs as %s",
                            name, plugin.name, plugin.name)
            plugins.append(plugin)
        return cls(plugins)

    @property
    def plugins(self) -> tuple[ConnectorPlugin, ...]:
        return tuple(self._plugins.values())

    def get(self, name: str) -> ConnectorPlugin:
        return self._plugins[name]

    def topics(self) -> tuple[TopicSpec, ...]:
        """The topics the plugins declare, each once."""
        found: dict[str, TopicSpec] = {}
        for plugin in self._plugins.values():
            for spec in plugin.declared_topics():
                found.setdefault(spec.name, spec)
        return tuple(found.values())

    def start(self, builders: Mapping[str, Callable[[Any], PluginConnector]] | None = None,
              ) -> list[RunningConnector]:
        """Build every connector from its settings, with its consumer. ``builders``, by
        plugin name: where the hub gives a connector more than its settings (the mail
        connector gets the shared document store)."""
        started = []
        for plugin in self._plugins.values():
            handlers: dict[type[Payload], Effect] = {}
            build = (builders or {}).get(plugin.name, plugin.build)
            running = RunningConnector(
                plugin=plugin, connector=build(plugin.settings()),
                spec=ConsumerSpec(plugin.consumer_name, plugin.consumes,
                                  handlers=handlers,
                                  description=plugin.description, emits=plugin.emits),
                _handlers=handlers)
            running._bind()
            self.running[plugin.name] = running
            started.append(running)
        return started


def all_topics(registry: ConnectorRegistry | None = None) -> tuple[TopicSpec, ...]:
    """The hub's topics (schemas/topics.py) and those the installed connectors declare."""
    registry = registry or ConnectorRegistry.discover()
    found = {spec.name: spec for spec in ALL_TOPICS}
    for spec in registry.topics():
        found.setdefault(spec.name, spec)
    return tuple(found.values())
