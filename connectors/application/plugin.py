"""The application connector's declaration to the hub (entry point ``application`` of the group
``procurement_hub.connectors``, connectors/_shared/plugin.py)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from connectors.application.connector import ApplicationConnector
from connectors.application.effects import effects
from connectors.application.settings import ApplicationSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="application",
    description="オンライン申請システム: submissions in, corrections out",
    settings=ApplicationSettings,
    consumes=(Topics.APPLICATION_COMMANDS,),
    topics=(Topics.APPLICATION_COMMANDS, Topics.APPLICATION_EVENTS),
    build=ApplicationConnector,
    effects=effects,
)
