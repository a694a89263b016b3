"""The cloudsign connector's declaration to the hub (entry point ``cloudsign`` of the group
``procurement_hub.connectors``, connectors/_shared/plugin.py)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from connectors.cloudsign.connector import CloudSignConnector
from connectors.cloudsign.effects import effects
from connectors.cloudsign.settings import CloudSignSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="cloudsign",
    description="CloudSign: contracts sent, completions re-read through the API",
    settings=CloudSignSettings,
    consumes=(Topics.CONTRACT_COMMANDS,),
    topics=(Topics.CONTRACT_COMMANDS, Topics.CONTRACT_EVENTS),
    build=CloudSignConnector,
    effects=effects,
)
