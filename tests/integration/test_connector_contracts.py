"""The connector contract (connectors/_shared/testkit.py) for the built-in HTTP
connectors, each against its reference peer on loopback: peer down, slow, garbage, in
maintenance (configured and announced), duplicate delivery, poison input."""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path
from typing import Any

from reportlab.pdfgen import canvas

from connectors._shared.testkit import ConnectorContract, ContractPeer
from connectors.application import ApplicationConnector, ApplicationSettings
from connectors.application.peer import ApplicationPeer
from connectors.cloudsign import CloudSignConnector, CloudSignSettings, FileDocumentStore
from connectors.cloudsign.peer import CloudSignPeer
from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.peer import DSurePeer, seed_certificate
from schemas.application import CorrectionRequested
from schemas.cloudsign import ContractParticipant, ContractSendRequested
from schemas.rejection import RuleViolation
from schemas.surety import SuretyCertificateFetched, SuretyCheckRequested, SuretyKeySource

TOKEN = "test-city-token"
WEBHOOK_SECRET = "test-webhook-secret"
CLIENT_ID = "test-cloudsign-client"


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


class TestApplicationContract(ConnectorContract):
    """オンライン申請システム: corrections (補正依頼) sent back, idempotent on the correction
    id; a correction for an application the system does not know is refused for good."""

    def make_peer(self) -> ContractPeer:
        return ApplicationPeer(token=TOKEN)

    def make_connector(self, url: str, **settings: Any) -> ApplicationConnector:
        return ApplicationConnector(ApplicationSettings(
            base_url=url, api_token=TOKEN, webhook_secret=WEBHOOK_SECRET, **settings))

    async def deliver(self, connector: ApplicationConnector, command: Any) -> Any:
        return await connector.send_correction(command)

    def command(self, peer: ContractPeer, n: int) -> CorrectionRequested:
        assert isinstance(peer, ApplicationPeer)
        app_id = peer.submit(case_no=f"R7-{n:04d}", procedure="電子契約利用申出書",
                             company="〇〇建設 株式会社")
        return self._correction(app_id, n)

    @staticmethod
    def _correction(app_id: str, n: int) -> CorrectionRequested:
        return CorrectionRequested(
            correction_id=uuid.uuid5(uuid.NAMESPACE_URL, f"correction-{n}"),
            application_id=app_id, comment_ja="再提出してください",
            violations=(RuleViolation(rule_id="CON-1", message_ja="契約締結権限者がありません",
                                      message_en="No 契約締結権限者 given"),))

    def poison(self, peer: ContractPeer) -> CorrectionRequested:
        return self._correction("A999999", 99)

    def effects_on_peer(self, peer: ContractPeer, command: Any) -> int | None:
        assert isinstance(peer, ApplicationPeer)
        return sum(1 for c in peer.corrections.values()
                   if c["application_id"] == command.application_id)

    def same_answer(self, first: Any, second: Any) -> bool:
        return bool(first.peer_reference == second.peer_reference)


def _pdf(text: str) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(60, 780, text)
    pdf.save()
    return buffer.getvalue()


class TestCloudSignContract(ConnectorContract):
    """CloudSign: a contract set sent for signature; a source file edited since it was
    stored is refused with CON-5 before anything is sent."""

    def make_peer(self) -> ContractPeer:
        self.home = Path(tempfile.mkdtemp(prefix="cloudsign-contract-"))
        self.store = FileDocumentStore(self.home / "docs")
        return CloudSignPeer(client_id=CLIENT_ID)

    def make_connector(self, url: str, **settings: Any) -> CloudSignConnector:
        return CloudSignConnector(CloudSignSettings(
            base_url=url, client_id=CLIENT_ID, document_dir=self.home / "docs", **settings))

    async def deliver(self, connector: CloudSignConnector, command: Any) -> Any:
        return await connector.send(command)

    def command(self, peer: ContractPeer, n: int) -> ContractSendRequested:
        return ContractSendRequested(
            request_id=uuid.uuid5(uuid.NAMESPACE_URL, f"send-{n}"), case_id=f"R7-{n:04d}",
            title=f"市道{n}号線舗装工事 請負契約書", message="ご確認をお願いします。",
            files=(self.store.put(f"請負契約書-{n}.pdf", _pdf(f"contract {n}")),),
            participants=(ContractParticipant(name="足利 一郎", email="ichiro@example.co.jp",
                                              organization="〇〇建設株式会社"),))

    def poison(self, peer: ContractPeer) -> ContractSendRequested:
        command = self.command(peer, 98)
        Path(command.files[0].uri.removeprefix("file://")).write_bytes(_pdf("改ざん"))
        return command

    def effects_on_peer(self, peer: ContractPeer, command: Any) -> int | None:
        assert isinstance(peer, CloudSignPeer)
        return sum(1 for d in peer._state.documents.values() if d["title"] == command.title)

    def same_answer(self, first: Any, second: Any) -> bool:
        return bool(first.document_id == second.document_id)
