"""The mail connector's documents (connectors.mail.DocumentStore) from the shared store.

A conclusion notice's ``attachment_ref`` reads ``contracts/<sha256>/<file name>``
(pipelines/contract/mails.py): the mail connector attaches the document under the limit
and otherwise mails a signed link to the hub's own download route (CON-4). Nothing is
read from a local directory, so any process on any host sends the mail. References
written before the key was spelled out in full name its first 32 hex digits; those are
found by that prefix.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import sqlalchemy as sa

from connectors.mail.documents import DocumentNotFoundError as MailDocumentNotFound
from connectors.mail.documents import StoredDocument as MailDocument
from hub.documents.links import LinkSigner
from hub.documents.store import DOCUMENTS, DocumentNotFoundError, SqlDocumentStore, is_key

__all__ = ["MailDocuments"]

_PREFIX = "contracts/"


class MailDocuments:
    """``connectors.mail.documents.DocumentStore`` over a :class:`SqlDocumentStore`."""

    def __init__(self, store: SqlDocumentStore, links: LinkSigner) -> None:
        self.store, self.links = store, links

    def __repr__(self) -> str:
        return f"MailDocuments({self.store!r}, {self.links!r})"

    def _key(self, ref: str) -> str:
        part = ref[len(_PREFIX):].split("/", 1)[0] if ref.startswith(_PREFIX) else ""
        if is_key(part):
            return part
        if len(part) == 32 and is_key(part + "0" * 32):  # an older, shortened reference
            with self.store.engine.connect() as conn:
                found = conn.execute(sa.select(DOCUMENTS.c.sha256).where(
                    DOCUMENTS.c.sha256.startswith(part, autoescape=True)).limit(2)).scalars().all()
            if len(found) == 1:
                return str(found[0])
        raise MailDocumentNotFound(f"no document {ref[:200]!r}")

    def _stat(self, ref: str) -> MailDocument:
        try:
            doc = self.store.stat(self._key(ref))
        except DocumentNotFoundError as exc:
            raise MailDocumentNotFound(str(exc)) from None
        return MailDocument(ref, doc.filename, doc.content_type, doc.size)

    def _read(self, ref: str) -> bytes:
        try:
            return self.store.get(self._key(ref))
        except DocumentNotFoundError as exc:
            raise MailDocumentNotFound(str(exc)) from None

    async def describe(self, ref: str) -> MailDocument:
        return await asyncio.to_thread(self._stat, ref)

    async def read(self, ref: str) -> bytes:
        return await asyncio.to_thread(self._read, ref)

    async def download_link(self, ref: str, expires_at: datetime) -> str:
        doc = await self.describe(ref)
        return self.links.link(self._key(ref), doc.filename, expires_at)
