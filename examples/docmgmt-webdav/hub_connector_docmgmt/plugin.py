"""The declaration procurement-hub discovers (entry point ``docmgmt-webdav``).

It reads ``proc.contract.events``; ``HUB_DOCMGMT_TOPIC`` names another topic of the same
kind instead (a staging copy, or a test's own topic), like Kafka Connect's ``topics``.
"""

from __future__ import annotations

import os
from dataclasses import replace

from connectors._shared.plugin import ConnectorPlugin
from hub_connector_docmgmt.connector import DocmgmtConnector
from hub_connector_docmgmt.effects import effects
from hub_connector_docmgmt.settings import DocmgmtSettings
from schemas.topics import Topics, TopicSpec

__all__ = ["PLUGIN"]


def _contract_events() -> TopicSpec:
    name = os.environ.get("HUB_DOCMGMT_TOPIC")
    return replace(Topics.CONTRACT_EVENTS, name=name) if name else Topics.CONTRACT_EVENTS


PLUGIN = ConnectorPlugin(
    name="docmgmt-webdav",
    description="文書管理システム (WebDAV): each concluded contract filed with its signed PDFs",
    settings=DocmgmtSettings,
    consumes=(_contract_events(),),
    build=DocmgmtConnector,
    effects=effects,
)
