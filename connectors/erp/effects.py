"""The ERP connector as a hub consumer effect: ERP_COMMANDS → SOAP → ERP_EVENTS.

ErpRegistrationRequested → :meth:`ErpConnector.register` → ErpRegistered (also
for an idempotent repeat, with ``duplicate`` true). A refusal naming rules
(CON-2, SUR-6, INV-1, INV-3) → ErpRegistrationRejected, not an exception. An
outage is raised as TransientPeerError (retried, then dead-lettered), an ERP
maintenance window as PeerInMaintenance (held until it ends, WIN-2), a
misconfiguration (no rule) as PermanentPeerError (dead-lettered, replayable).
"""

from __future__ import annotations

from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors._shared.errors import PermanentPeerError
from connectors.erp.connector import ErpConnector
from connectors.erp.mapping import rejection_for
from schemas.envelope import Envelope
from schemas.erp import ErpRegistrationRequested
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["effects"]


def effects(connector: ErpConnector) -> dict[type[Payload], Effect]:
    async def register(ctx: Emitter, envelope: Envelope[Any]) -> None:
        request: ErpRegistrationRequested = envelope.payload
        try:
            registered = await connector.register(request)
        except PermanentPeerError as exc:
            rejected = rejection_for(request, exc)
            if rejected is None:
                raise
            ctx.emit(Topics.ERP_EVENTS, rejected, cause=envelope)
            return
        ctx.emit(Topics.ERP_EVENTS, registered, cause=envelope)

    return {ErpRegistrationRequested: register}
