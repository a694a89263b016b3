"""The shared document store, its signed download links and the CON-4 download route.

- :mod:`.store`: :class:`~.store.DocumentStore` (put, get, stat, delete by key; keys are
  SHA-256 of the content) and :class:`~.store.SqlDocumentStore`, bytes in the database;
- :mod:`.links`: HMAC-signed links valid until their expiry (CON-4: 10 days);
- :mod:`.routes`: ``GET /documents/{key}/{filename}``, served by the hub itself;
- :mod:`.mail`: the mail connector's documents from the store (attachments and links).
"""

from hub.documents.links import LinkSigner, LinkState
from hub.documents.store import (
    DocumentNotFoundError,
    DocumentStore,
    SqlDocumentStore,
    StoredDocument,
    content_key,
)

__all__ = [
    "DocumentNotFoundError",
    "DocumentStore",
    "LinkSigner",
    "LinkState",
    "SqlDocumentStore",
    "StoredDocument",
    "content_key",
]
