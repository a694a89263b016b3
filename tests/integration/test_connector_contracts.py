"""The connector contract (connectors/_shared/testkit.py) for the built-in HTTP
connectors, each against its reference peer on loopback: peer down, slow, garbage, in
maintenance (configured and announced), duplicate delivery, poison input."""

from __future__ import annotations

from typing import Any

from connectors._shared.testkit import ConnectorContract, ContractPeer
from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.peer import DSurePeer, seed_certificate
from schemas.surety import SuretyCertificateFetched, SuretyCheckRequested, SuretyKeySource

TOKEN = "test-city-token"


class TestDSureContract(ConnectorContract):
    """D・Sure: a read-only lookup; a wrong 認証キー is refused with SUR-1."""

    def make_peer(self) -> ContractPeer:
        return DSurePeer(token=TOKEN)

    def make_connector(self, url: str, **settings: Any) -> DSureConnector:
        return DSureConnector(DSureSettings(base_url=url, api_token=TOKEN, **settings))

    async def deliver(self, connector: DSureConnector, command: Any) -> Any:
        return await connector.check(command)

    def command(self, peer: ContractPeer, n: int) -> SuretyCheckRequested:
        assert isinstance(peer, DSurePeer)
        certificate = seed_certificate()
        issued = peer.issue(certificate.model_copy(
            update={"contract_number": f"{certificate.contract_number[:-2]}{n:02d}"}))
        return SuretyCheckRequested(contract_number=issued.certificate.contract_number,
                                    auth_key=issued.auth_key, source=SuretyKeySource.APPLICATION)

    def poison(self, peer: ContractPeer) -> SuretyCheckRequested:
        good = self.command(peer, 99)
        return good.model_copy(update={"auth_key": "WRONGKEY0000"})

    def same_answer(self, first: Any, second: Any) -> bool:
        return (isinstance(first, SuretyCertificateFetched)
                and isinstance(second, SuretyCertificateFetched)
                and first.certificate == second.certificate)
