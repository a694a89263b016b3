"""The D・Sure connector: what the hub calls for a surety check (SUR-1, SUR-2, SUR-6).

Entry point for the consumer of ``Topics.SURETY_COMMANDS``::

    result = await connector.check(command)      # SuretyCheckRequested
    # → SuretyCertificateFetched or SuretyLookupRefused, publish to SURETY_EVENTS

Raises :class:`~connectors._shared.TransientPeerError` (retry, then dead-letter)
or :class:`~connectors._shared.PeerInMaintenance` (hold until ``retry_at``); a
refusal by D・Sure is a business answer, returned as ``SuretyLookupRefused``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from connectors._shared import Guard, Health, PermanentPeerError
from connectors._shared.httpkit import classify_httpx
from connectors.dsure.adapter import NAME, DSureAdapter
from connectors.dsure.keynotice import KeyNotice, read_key_notice
from connectors.dsure.settings import DSureSettings
from schemas.surety import SuretyCertificateFetched, SuretyCheckRequested, SuretyLookupRefused

__all__ = ["DSureConnector"]


class DSureConnector:
    """D・Sure surety lookups under one retry policy, breaker and maintenance calendar."""

    name = NAME

    def __init__(self, settings: DSureSettings | None = None, *,
                 adapter: DSureAdapter | None = None, guard: Guard | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings or DSureSettings()
        self.adapter = adapter or DSureAdapter(self.settings)
        self.guard = guard or Guard.from_settings(NAME, self.settings, classify=classify_httpx)
        self._clock = clock

    async def check(self, command: SuretyCheckRequested
                    ) -> SuretyCertificateFetched | SuretyLookupRefused:
        """Fetch the certificate for the command's number and key from D・Sure."""
        try:
            certificate = await self.guard.call(
                lambda: self.adapter.lookup(command.contract_number, command.auth_key),
                what="lookup",
            )
        except PermanentPeerError as exc:
            if not exc.violations:
                raise
            return SuretyLookupRefused(contract_number=command.contract_number,
                                       violations=exc.violations)
        return SuretyCertificateFetched(certificate=certificate, fetched_at=self._clock())

    def read_notice(self, pdf: bytes) -> KeyNotice:
        """保証契約番号 and 認証キー from an uploaded 「認証キーのお知らせ」 (SUR-1)."""
        return read_key_notice(pdf, max_bytes=self.settings.max_notice_bytes)

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        await self.adapter.aclose()
