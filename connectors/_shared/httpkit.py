"""How an HTTP connector classifies what its peer did (httpx), for the shared Guard.

- no connection, reset, timeout, 5xx (but 503 maintenance), 429, a body that is not
  the JSON promised → :class:`~connectors._shared.TransientPeerError` (retried, then
  dead-lettered with the reason);
- 503 with ``{"error": "maintenance", "until": ...}`` or ``Retry-After`` →
  :class:`~connectors._shared.PeerInMaintenance` (held, WIN-2; not an attempt);
- other 4xx → left to the connector, which knows which rule a refusal breaks.

Reasons name the status and the operation, never a URL's query or a credential.
Shared by every HTTP connector.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors._shared import ConnectorError, PeerInMaintenance, TransientPeerError
from connectors._shared.policy import default_classify

__all__ = ["classify_httpx", "health_status", "json_body", "raise_for_peer"]


def classify_httpx(connector: str, exc: BaseException) -> ConnectorError | None:
    """The Guard's classifier: httpx's transport errors are transient."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientPeerError(connector, f"timeout ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return TransientPeerError(connector, f"network ({type(exc).__name__})")
    return default_classify(connector, exc)


def _maintenance_until(response: httpx.Response) -> datetime | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error") == "maintenance":
        try:
            until = datetime.fromisoformat(str(body.get("until")))
        except ValueError:
            until = None
        if until is not None and until.tzinfo is not None:
            return until
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(retry_after))
    return None


def raise_for_peer(connector: str, what: str, response: httpx.Response) -> None:
    """Raise the transient or maintenance answer for ``response``; return on 2xx–4xx."""
    status = response.status_code
    if status == 503:
        until = _maintenance_until(response)
        if until is not None:
            raise PeerInMaintenance(connector, until, "peer announced maintenance")
    if status >= 500 or status == 429:
        raise TransientPeerError(connector, f"{what}: HTTP {status}")


def json_body(connector: str, what: str, response: httpx.Response) -> Any:
    """The response's JSON, or a transient 'garbage' error (the peer may recover)."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "?")
        raise TransientPeerError(
            connector, f"{what}: answer is not JSON (HTTP {response.status_code}, {kind})"
        ) from None


async def health_status(connector: str, client: httpx.AsyncClient) -> str:
    """``GET /api/v1/health`` of a reference-style peer: its status, or a transient error."""
    response = await client.get("/api/v1/health")
    raise_for_peer(connector, "health", response)
    body = json_body(connector, "health", response)
    if response.status_code != 200 or not isinstance(body, dict):
        raise TransientPeerError(connector, f"health: HTTP {response.status_code}")
    return str(body.get("status", "?"))
