"""ContractConcluded on proc.contract.events -> the 文書管理システム. Emits nothing: the
filing is the effect; a refusal is dead-lettered with its rule (X-DOCMGMT-1, -2)."""

from __future__ import annotations

import logging
from typing import Any

from connectors._shared.effects import Effect, Emitter
from hub_connector_docmgmt.connector import DocmgmtConnector
from schemas.cloudsign import ContractConcluded
from schemas.envelope import Envelope
from schemas.registry import Payload

__all__ = ["effects"]

log = logging.getLogger(__name__)


def effects(connector: DocmgmtConnector) -> dict[type[Payload], Effect]:
    async def file(ctx: Emitter, envelope: Envelope[Any]) -> None:
        filed = await connector.file(envelope.payload)
        log.info("docmgmt: contract filed in %s (%d new files)", filed.folder,
                 len(filed.created))

    return {ContractConcluded: file}
