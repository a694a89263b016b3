"""HTTP transport of RFC 3161 (RFC 3161 §3.4): POST a TimeStampReq, get a TimeStampResp.

Errors are classified for the connector's guard: network trouble, timeouts, 5xx and a
wrong content type are transient (retried); any other HTTP refusal is permanent.
"""

from __future__ import annotations

import httpx

from connectors._shared.errors import PermanentPeerError, TransientPeerError
from connectors._shared.tls import default_tls_context

__all__ = ["QUERY_TYPE", "REPLY_TYPE", "TsaAdapter"]

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class TsaAdapter:
    """Talks HTTP to one TSA. A fresh client per call: pyHanko's sync API runs each
    signature on its own event loop, and a pooled client cannot outlive its loop. The TLS
    context is the process's one (connectors._shared.tls), so the CA bundle is loaded once,
    not per call."""

    def __init__(self, name: str, url: str, timeout_s: float) -> None:
        self.name = name
        self.url = url
        self.timeout_s = timeout_s

    async def post(self, query: bytes) -> bytes:
        """Send one DER TimeStampReq; return the DER TimeStampResp."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s,
                                         verify=default_tls_context()) as http:
                reply = await http.post(self.url, content=query,
                                        headers={"Content-Type": QUERY_TYPE})
        except httpx.TimeoutException as exc:
            raise TransientPeerError(self.name, f"timeout: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientPeerError(self.name, f"network: {type(exc).__name__}") from exc
        if reply.status_code >= 500:
            raise TransientPeerError(self.name, f"HTTP {reply.status_code}")
        if reply.status_code != 200:
            raise PermanentPeerError(self.name, f"HTTP {reply.status_code}")
        if reply.headers.get("content-type", "").split(";")[0].strip() != REPLY_TYPE:
            raise TransientPeerError(self.name, f"answer is not {REPLY_TYPE}")
        return reply.content
