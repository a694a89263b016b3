"""The connector contract (procurement-hub's test kit) against a real WebDAV server:
peer down, slow, garbage, in maintenance, duplicate delivery, poison input."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub_connector_docmgmt import DocmgmtConnector, DocmgmtSettings
from hub_connector_docmgmt.peer import WebDavPeer

from connectors._shared.testkit import ConnectorContract, ContractPeer
from connectors.cloudsign.documents import FileDocumentStore
from schemas.cloudsign import ContractConcluded

PASSWORD = "pw"  # noqa: S105 -- the test peer's


class TestDocmgmtContract(ConnectorContract):
    def make_peer(self) -> ContractPeer:
        self.home = Path(tempfile.mkdtemp(prefix="docmgmt-"))
        self.store = FileDocumentStore(self.home / "documents")
        return WebDavPeer(self.home / "dav", password=PASSWORD)

    def make_connector(self, url: str, **settings: Any) -> DocmgmtConnector:
        return DocmgmtConnector(DocmgmtSettings(base_url=url, password=PASSWORD,
                                                documents_dir=self.home / "documents",
                                                **settings))

    async def deliver(self, connector: DocmgmtConnector, command: Any) -> Any:
        return await connector.file(command)

    def command(self, peer: ContractPeer, n: int) -> ContractConcluded:
        pdf = self.store.put(f"契約書-{n}.pdf", f"%PDF-1.7 signed contract {n}".encode())
        certificate = self.store.put(f"合意締結証明書-{n}.pdf",
                                     f"%PDF-1.7 certificate {n}".encode())
        return ContractConcluded(document_id=f"doc-{n}", case_id=f"R7-工事-{n:03d}",
                                 title=f"道路補修工事 {n}", concluded_at=datetime.now(UTC),
                                 signed_files=(pdf,), certificate=certificate)

    def poison(self, peer: ContractPeer) -> ContractConcluded:
        event = self.command(peer, 900)
        missing = event.signed_files[0].model_copy(update={"sha256": "0" * 64})
        return event.model_copy(update={"signed_files": (missing,)})

    def effects_on_peer(self, peer: ContractPeer, command: Any) -> int | None:
        assert isinstance(peer, WebDavPeer)
        created = [p for p in peer.created if p.endswith(f"/{command.case_id}/metadata.json")]
        return sum(peer.created[p] for p in created)
