"""Where the documents mailed under CON-4 come from, and their download links.

A ``MailRequested.attachment_ref`` names a document in a :class:`DocumentStore`.
The mail connector attaches it when it is under the limit (6 MB, CON-4) and
otherwise mails a download link valid 10 days. :class:`DirectoryDocumentStore`
keeps documents as files and signs links with HMAC-SHA256 over the reference and
the expiry (RFC 2104), so whatever serves downloads can check a link with
:meth:`DirectoryDocumentStore.verify_link` without a database. The signing key
is never logged nor shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import mimetypes
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

__all__ = ["DirectoryDocumentStore", "DocumentNotFoundError", "DocumentStore", "StoredDocument"]


@dataclass(frozen=True)
class StoredDocument:
    ref: str
    filename: str
    content_type: str
    size: int


class DocumentNotFoundError(LookupError):
    """No document under this reference (or the reference is not a valid one)."""


class DocumentStore(Protocol):
    async def describe(self, ref: str) -> StoredDocument:
        """Name, type and size of a document; raises DocumentNotFoundError."""

    async def read(self, ref: str) -> bytes:
        """The document's bytes; raises DocumentNotFoundError."""

    async def download_link(self, ref: str, expires_at: datetime) -> str:
        """A link that serves the document until ``expires_at`` (aware)."""


class DirectoryDocumentStore:
    """Documents as files under ``root``; links under ``base_url``, HMAC-signed."""

    def __init__(self, root: Path, base_url: str, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the link signing key must be at least 16 bytes")
        self.root = root.resolve()
        self.base_url = base_url.rstrip("/")
        self._key = key

    def __repr__(self) -> str:
        return f"DirectoryDocumentStore(root={str(self.root)!r}, base_url={self.base_url!r})"

    def _path(self, ref: str) -> Path:
        bad = (not ref or ref.startswith("/") or "\\" in ref or ".." in ref.split("/")
               or any(unicodedata.category(c) == "Cc" for c in ref))
        path = (self.root / ref).resolve()
        if bad or not path.is_relative_to(self.root) or not path.is_file():
            raise DocumentNotFoundError(f"no document {ref!r}")
        return path

    async def describe(self, ref: str) -> StoredDocument:
        path = self._path(ref)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        size = (await asyncio.to_thread(path.stat)).st_size
        return StoredDocument(ref, path.name, content_type, size)

    async def read(self, ref: str) -> bytes:
        return await asyncio.to_thread(self._path(ref).read_bytes)

    def _signature(self, ref: str, expires: int) -> str:
        message = f"{ref}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def download_link(self, ref: str, expires_at: datetime) -> str:
        self._path(ref)
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires, "sig": self._signature(ref, expires)})
        return f"{self.base_url}/{quote(ref)}?{query}"

    def verify_link(self, ref: str, expires: int, sig: str, now: datetime) -> bool:
        """True when the link was made here for ``ref`` and has not expired."""
        valid = hmac.compare_digest(self._signature(ref, expires), sig)
        return valid and now.timestamp() < expires
