"""Signed download links of stored documents (CON-4: valid 10 days).

A link names the document's key and file name, when it stops working (Unix seconds), and
an HMAC-SHA256 (RFC 2104) over the key and that expiry with the hub's link key
(``HUB_MAIL_LINK_KEY``, the same in every process). Any process checks a link without a
database row per link; changing the key, the file name's document or the expiry breaks
the signature. The key is never logged nor shown.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import Enum
from urllib.parse import quote, urlencode

__all__ = ["LinkSigner", "LinkState"]

DOWNLOAD_PATH = "/documents"


class LinkState(Enum):
    VALID = "valid"
    FORGED = "forged"
    EXPIRED = "expired"


class LinkSigner:
    """Makes and checks the links under ``base_url`` (the hub's public base URL)."""

    def __init__(self, base_url: str, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the link signing key must be at least 16 bytes")
        self.base_url = base_url.rstrip("/")
        self._key = key

    def __repr__(self) -> str:
        return f"LinkSigner(base_url={self.base_url!r})"

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def link(self, key: str, filename: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires, "sig": self._signature(key, expires)})
        return f"{self.base_url}{DOWNLOAD_PATH}/{key}/{quote(filename)}?{query}"

    def check(self, key: str, expires: int, sig: str, now: datetime) -> LinkState:
        if not hmac.compare_digest(self._signature(key, expires), sig):
            return LinkState.FORGED
        return LinkState.VALID if now.timestamp() < expires else LinkState.EXPIRED
