"""The outbound adapter to the online application system (APPLICATION-API, see ``peer``).

One attempt per call; retries, breaker, deadline and windows are the Guard's.
Refusals (unknown application, a correction the system will not take) are
permanent; a wrong token is permanent with no rule (an operator fixes it).
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from connectors._shared import PermanentPeerError, TransientPeerError
from connectors._shared.httpkit import health_status, json_body, raise_for_peer
from connectors.application.mapping import attachment_path
from connectors.application.settings import ApplicationSettings

__all__ = ["NAME", "ApplicationAdapter", "Page"]

NAME = "application"

Page = tuple[list[dict[str, Any]], str]


def _refused(what: str, response: httpx.Response) -> PermanentPeerError:
    if response.status_code in (401, 403):
        return PermanentPeerError(NAME, f"{what}: the application system refused the hub's "
                                  "token (check HUB_APPLICATION_API_TOKEN)")
    return PermanentPeerError(NAME, f"{what}: HTTP {response.status_code}")


class ApplicationAdapter:
    def __init__(self, settings: ApplicationSettings,
                 client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_s,
            headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}",
                     "Accept": "application/json"},
        )

    async def list_after(self, cursor: str, limit: int) -> Page:
        """Applications submitted after ``cursor``, oldest first, and the next cursor."""
        response = await self._client.get("/api/v1/applications",
                                          params={"after": cursor or "0", "limit": limit})
        raise_for_peer(NAME, "poll", response)
        if response.status_code != 200:
            raise _refused("poll", response)
        body = json_body(NAME, "poll", response)
        items = body.get("applications") if isinstance(body, dict) else None
        next_cursor = body.get("cursor") if isinstance(body, dict) else None
        if not isinstance(items, list) or not isinstance(next_cursor, str):
            raise TransientPeerError(NAME, "poll: answer has no applications list or cursor")
        return items, next_cursor

    async def get(self, application_id: str) -> dict[str, Any]:
        response = await self._client.get(f"/api/v1/applications/{application_id}")
        raise_for_peer(NAME, "get", response)
        if response.status_code != 200:
            raise _refused("get", response)
        body = json_body(NAME, "get", response)
        if not isinstance(body, dict):
            raise TransientPeerError(NAME, "get: answer is not an application object")
        return body

    async def download(self, application_id: str, attachment_id: str, sha256: str) -> bytes:
        """An attachment's bytes, checked against the SHA-256 the record announced."""
        async with self._client.stream(
                "GET", attachment_path(application_id, attachment_id)) as response:
            raise_for_peer(NAME, "download", response)
            if response.status_code != 200:
                raise _refused("download", response)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._settings.max_attachment_bytes:
                    raise PermanentPeerError(NAME, "download: attachment larger than "
                                             f"{self._settings.max_attachment_bytes} bytes")
                chunks.append(chunk)
        content = b"".join(chunks)
        if hashlib.sha256(content).hexdigest() != sha256:
            raise TransientPeerError(NAME, "download: attachment does not match its SHA-256")
        return content

    async def post_correction(self, application_id: str, key: str,
                              body: dict[str, Any]) -> str:
        """Send one correction; the idempotency key makes a repeat harmless."""
        response = await self._client.post(
            f"/api/v1/applications/{application_id}/corrections", json=body,
            headers={"Idempotency-Key": key})
        raise_for_peer(NAME, "correction", response)
        if response.status_code not in (200, 201):
            raise _refused("correction", response)
        answer = json_body(NAME, "correction", response)
        reference = answer.get("reference") if isinstance(answer, dict) else None
        if not isinstance(reference, str) or not reference:
            raise TransientPeerError(NAME, "correction: answer has no reference")
        return reference

    async def ping(self) -> str:
        return await health_status(NAME, self._client)

    async def aclose(self) -> None:
        await self._client.aclose()
