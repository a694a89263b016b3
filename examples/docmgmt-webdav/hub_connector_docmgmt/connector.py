"""DocmgmtConnector: files each concluded contract, under the shared Guard.

Idempotent: the folder is named by the 案件番号 and every file by its own name, so a
redelivered event writes the same resources again (no second folder, no copy), and
``metadata.json`` goes last, so its presence says the filing is complete.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from connectors._shared import Guard, Health, PermanentPeerError
from connectors._shared.httpkit import classify_httpx
from connectors.cloudsign.documents import FileDocumentStore
from hub_connector_docmgmt.adapter import NAME, WebDavAdapter
from hub_connector_docmgmt.mapping import DOCUMENT_UNUSABLE, Filing, filing_for
from hub_connector_docmgmt.settings import DocmgmtSettings
from schemas.cloudsign import ContractConcluded

__all__ = ["DocmgmtConnector", "Filed"]


class Filed:
    """Where a contract was filed and which files were new there."""

    def __init__(self, folder: str, created: tuple[str, ...]) -> None:
        self.folder = folder
        self.created = created

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filed) and other.folder == self.folder

    def __hash__(self) -> int:
        return hash(self.folder)


class DocmgmtConnector:
    name = NAME

    def __init__(self, settings: DocmgmtSettings | None = None) -> None:
        self.settings = settings or DocmgmtSettings()
        self.adapter = WebDavAdapter(self.settings)
        self.guard = Guard.from_settings(NAME, self.settings, classify=classify_httpx)
        self.store = FileDocumentStore(self.settings.documents_dir)

    def _contents(self, filing: Filing) -> list[tuple[str, bytes]]:
        found = []
        for name, ref in filing.files:
            try:
                found.append((name, self.store.get(ref)))
            except (OSError, ValueError) as exc:
                raise PermanentPeerError(NAME, f"{name}: {type(exc).__name__}",
                                         (DOCUMENT_UNUSABLE,)) from None
        return found

    async def file(self, event: ContractConcluded) -> Filed:
        """File the contract's folder. Raises only classified errors."""
        try:
            filing = filing_for(self.settings.root, event)
        except ValueError:
            raise PermanentPeerError(NAME, "file names unusable", (DOCUMENT_UNUSABLE,)) from None
        contents = self._contents(filing)
        created: list[str] = []

        async def upload() -> None:
            if not await self.adapter.folder_exists(filing.folder):
                root = filing.folder.rstrip("/").rsplit("/", 1)[0] + "/"
                await self.adapter.make_folder(root)
                await self.adapter.make_folder(filing.folder)
            for name, content in contents:
                kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                if await self.adapter.put(filing.folder + _quoted(name), content, kind):
                    created.append(name)
            if await self.adapter.put(filing.folder + "metadata.json", filing.metadata,
                                      "application/json; charset=utf-8"):
                created.append("metadata.json")

        await self.guard.call(upload, what="file contract")
        return Filed(filing.folder, tuple(created))

    async def health(self) -> Health:
        return await self.guard.probe(self.adapter.ping)

    async def aclose(self) -> None:
        await self.adapter.aclose()


def _quoted(name: str) -> str:
    return quote(name, safe="")
