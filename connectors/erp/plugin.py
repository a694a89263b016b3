"""The erp connector's declaration to the hub (entry point ``erp`` of the group
``procurement_hub.connectors``, connectors/_shared/plugin.py)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from connectors.erp.connector import ErpConnector
from connectors.erp.effects import effects
from connectors.erp.settings import ErpSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="erp",
    description="財務会計 over SOAP: contracts, advance payments, payments",
    settings=ErpSettings,
    consumes=(Topics.ERP_COMMANDS,),
    topics=(Topics.ERP_COMMANDS, Topics.ERP_EVENTS),
    build=ErpConnector,
    effects=effects,
)
