"""The dsure connector's declaration to the hub (entry point ``dsure`` of the group
``procurement_hub.connectors``, connectors/_shared/plugin.py)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from connectors.dsure.connector import DSureConnector
from connectors.dsure.effects import effects
from connectors.dsure.settings import DSureSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="dsure",
    description="D・Sure: fetches electronic surety certificates (SUR-1, SUR-2)",
    settings=DSureSettings,
    consumes=(Topics.SURETY_COMMANDS,),
    topics=(Topics.SURETY_COMMANDS, Topics.SURETY_EVENTS),
    build=DSureConnector,
    effects=effects,
)
