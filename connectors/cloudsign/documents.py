"""Where contract documents live while they travel by reference (CON-4, CON-7).

Messages carry a :class:`schemas.cloudsign.DocumentRef` (uri, name, size,
SHA-256), never the bytes. :class:`FileDocumentStore` keeps them under one
directory, content-addressed (the SHA-256 names the file), so storing the same
signed PDF twice (a redelivered webhook) writes it once; reading checks the
hash, so a file changed on disk is noticed (CON-5: an edited PDF is not the
signed one).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from connectors._shared.files import write_private
from schemas.cloudsign import DocumentRef

__all__ = ["DocumentStore", "DocumentTampered", "FileDocumentStore"]


class DocumentTampered(ValueError):
    """The stored bytes no longer match the reference's SHA-256 (CON-5)."""


class DocumentStore(Protocol):
    def put(self, filename: str, content: bytes) -> DocumentRef:
        """Keep ``content``; the reference to put in messages."""

    def get(self, ref: DocumentRef) -> bytes:
        """The bytes of ``ref``, checked against its SHA-256."""


class FileDocumentStore:
    """Content-addressed files under ``root`` (``file://`` URIs)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, filename: str, content: bytes) -> DocumentRef:
        digest = hashlib.sha256(content).hexdigest()
        path = self.root / digest[:2] / digest
        if not path.exists():
            write_private(path, content)  # 0600 under 0700, atomic
        return DocumentRef(uri=path.as_uri(), filename=filename, size_bytes=len(content),
                           sha256=digest)

    def get(self, ref: DocumentRef) -> bytes:
        parsed = urlparse(ref.uri)
        if parsed.scheme != "file":
            raise ValueError(f"not a file:// document reference: {parsed.scheme}://")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("document reference points outside the document store")
        content = path.read_bytes()
        if hashlib.sha256(content).hexdigest() != ref.sha256:
            raise DocumentTampered(f"CON-5: {ref.filename} changed since it was stored")
        return content
