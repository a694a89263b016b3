"""The hub's document store: one interface, shared by every ``hub run`` process.

Documents are kept by key and content-addressed: a document's key is the SHA-256 of its
bytes (hex), so storing the same bytes twice keeps one copy, and what is read is checked
against its key (CON-5: an edited PDF is not the one that was signed). The interface is
what an object store offers (put, get, stat, delete by key; no paths, no directories), so
an S3-compatible store can take the place of :class:`SqlDocumentStore` later.

:class:`SqlDocumentStore` keeps the bytes in the database the hub already shares between
its processes (``con_document``, the contract archive's table, CON-7): the city's signer
writes there, and the mail connector, the archive and the CON-4 download route read
there, whichever process or host they run in.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from pipelines.contract.models import DocumentRow

__all__ = [
    "DocumentNotFoundError",
    "DocumentStore",
    "SqlDocumentStore",
    "StoredDocument",
    "content_key",
    "is_key",
]

_KEY = re.compile(r"[0-9a-f]{64}")
DOCUMENTS = DocumentRow.__table__  # type: ignore[attr-defined]


def content_key(content: bytes) -> str:
    """The key of ``content``: its SHA-256, lower-case hex."""
    return hashlib.sha256(content).hexdigest()


def is_key(value: str) -> bool:
    return _KEY.fullmatch(value) is not None


@dataclass(frozen=True)
class StoredDocument:
    key: str
    filename: str
    content_type: str
    size: int
    created_at: datetime


class DocumentNotFoundError(LookupError):
    """No document under this key (or the key is not a key, or the bytes changed)."""


class DocumentStore(Protocol):
    """Documents by key (content-addressed); every method may block (run it in a thread)."""

    def put(self, content: bytes, *, filename: str) -> StoredDocument:
        """Keep ``content`` (once) under its key; what was stored."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``, checked against it; raises DocumentNotFoundError."""

    def stat(self, key: str) -> StoredDocument:
        """Name, type and size under ``key``; raises DocumentNotFoundError."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is unknown)."""


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class SqlDocumentStore:
    """Documents as rows of ``con_document`` (bytes in the table, keyed by SHA-256)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"SqlDocumentStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def put(self, content: bytes, *, filename: str) -> StoredDocument:
        with Session(self.engine) as session, session.begin():
            return self.put_in(session, content, filename=filename)

    def put_in(self, session: Session, content: bytes, *, filename: str) -> StoredDocument:
        """:meth:`put` inside the caller's transaction (it commits with the caller's rows)."""
        key = content_key(content)
        row = session.get(DocumentRow, key)
        if row is None:
            row = DocumentRow(sha256=key, filename=filename, size_bytes=len(content),
                              content=content, created_at=datetime.now(UTC))
            session.add(row)
            session.flush()
        return StoredDocument(key, row.filename, _content_type(row.filename), row.size_bytes,
                              _aware(row.created_at))

    def get(self, key: str) -> bytes:
        if not is_key(key):
            raise DocumentNotFoundError(f"no document {key[:80]!r}")
        with self.engine.connect() as conn:
            content = conn.execute(sa.select(DOCUMENTS.c.content).where(
                DOCUMENTS.c.sha256 == key)).scalar()
        if content is None:
            raise DocumentNotFoundError(f"no document {key[:12]}…")
        if content_key(content) != key:
            raise DocumentNotFoundError(f"CON-5: document {key[:12]}… changed since it was stored")
        return bytes(content)

    def stat(self, key: str) -> StoredDocument:
        if not is_key(key):
            raise DocumentNotFoundError(f"no document {key[:80]!r}")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(DOCUMENTS.c.filename, DOCUMENTS.c.size_bytes,
                                         DOCUMENTS.c.created_at)
                               .where(DOCUMENTS.c.sha256 == key)).first()
        if row is None:
            raise DocumentNotFoundError(f"no document {key[:12]}…")
        return StoredDocument(key, row.filename, _content_type(row.filename),
                              int(row.size_bytes), _aware(row.created_at))

    def delete(self, key: str) -> None:
        if not is_key(key):
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(DOCUMENTS).where(DOCUMENTS.c.sha256 == key))
