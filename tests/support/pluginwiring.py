"""A wiring of installed connector plugins only (``hub run --bootstrap
tests.support.pluginwiring:wiring``): those named in ``PLUGIN_WIRING_ONLY`` (comma-separated),
discovered through their entry points as ``hub run`` discovers them, with the control API."""

from __future__ import annotations

import os

from hub.bootstrap import Wiring
from hub.db import create_db_engine
from hub.plugins import ConnectorRegistry
from hub.settings import Settings


def wiring(settings: Settings) -> Wiring:
    only = [n for n in os.environ.get("PLUGIN_WIRING_ONLY", "").split(",") if n]
    registry = ConnectorRegistry.discover(only=only)
    built = Wiring(engine=create_db_engine(settings.database_url.get_secret_value()),
                   plugins=registry)
    for running in registry.start():
        built.connectors[running.plugin.consumer_name] = running.connector
        built.consumers.append(running.spec)
        built.closers.append(running.close)
    return built
