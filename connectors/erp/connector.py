"""The ERP connector: ErpRegistrationRequested in, ErpRegistered out (CON-2, SUR-6, INV-3).

The hub's consumer of ``Topics.ERP_COMMANDS`` awaits
:meth:`ErpConnector.register` and publishes the ErpRegistered it returns to
``Topics.ERP_EVENTS``. A refusal of the data raises :class:`PermanentPeerError`
whose violations name the rule (``mapping.rejection_for`` turns it into an
ErpRegistrationRejected event); an outage raises :class:`TransientPeerError`
after the connector's retries; an ERP maintenance window (configured, or
announced by the ERP in a ``Server.Maintenance`` fault) raises
:class:`PeerInMaintenance` and the hub holds the command until it ends.
The ERP is idempotent on ``business_key``: a redelivered command is answered
with the first receipt (``duplicate`` true), never registered twice.
"""

from __future__ import annotations

from connectors._shared.base import Guard
from connectors._shared.health import Health
from connectors.erp.adapter import SoapErpAdapter
from connectors.erp.mapping import NAME
from connectors.erp.settings import ErpSettings
from schemas.erp import ErpRegistered, ErpRegistrationRequested

__all__ = ["ErpConnector"]


class ErpConnector:
    """Registers contracts and payment requests in the municipal ERP, guarded."""

    name = NAME

    def __init__(self, settings: ErpSettings | None = None, *, guard: Guard | None = None) -> None:
        self.settings = settings or ErpSettings()
        self.adapter = SoapErpAdapter(self.settings)
        self.guard = guard or Guard.from_settings(NAME, self.settings)

    async def register(self, request: ErpRegistrationRequested) -> ErpRegistered:
        """Register once (idempotent on business_key). Raises only classified errors."""
        return await self.guard.call(lambda: self.adapter.register(request),
                                     what=f"register {request.kind.value}")

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        self.adapter.close()
