"""The declaration procurement-hub discovers (entry point ``docmgmt-webdav``)."""

from __future__ import annotations

from connectors._shared.plugin import ConnectorPlugin
from hub_connector_docmgmt.connector import DocmgmtConnector
from hub_connector_docmgmt.effects import effects
from hub_connector_docmgmt.settings import DocmgmtSettings
from schemas.topics import Topics

__all__ = ["PLUGIN"]

PLUGIN = ConnectorPlugin(
    name="docmgmt-webdav",
    description="文書管理システム (WebDAV): each concluded contract filed with its signed PDFs",
    settings=DocmgmtSettings,
    consumes=(Topics.CONTRACT_EVENTS,),
    build=DocmgmtConnector,
    effects=effects,
)
