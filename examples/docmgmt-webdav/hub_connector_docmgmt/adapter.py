"""The WebDAV client (RFC 4918): one attempt per call, every failure classified.

- no connection, timeouts, 5xx, 429, an answer that is not WebDAV → transient;
- 503 with ``Retry-After`` → :class:`PeerInMaintenance` (held, not an attempt);
- 403 (no write permission), 409, 507 (no space) → permanent, X-DOCMGMT-2;
- 401 → permanent without a rule (the hub's WebDAV credentials are wrong: an operator
  fixes the setting, then replays).
"""

from __future__ import annotations

import httpx

from connectors._shared import PermanentPeerError, TransientPeerError
from connectors._shared.httpkit import raise_for_peer
from hub_connector_docmgmt.mapping import FOLDER_REFUSED, PeerFormatError, multistatus_ok
from hub_connector_docmgmt.settings import DocmgmtSettings

__all__ = ["NAME", "WebDavAdapter"]

NAME = "docmgmt-webdav"

PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?>'
                 b'<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>')


class WebDavAdapter:
    def __init__(self, settings: DocmgmtSettings) -> None:
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"), timeout=settings.timeout_s,
            auth=httpx.BasicAuth(settings.username, settings.password.get_secret_value()))

    def _check(self, what: str, response: httpx.Response, ok: tuple[int, ...]) -> None:
        raise_for_peer(NAME, what, response)
        status = response.status_code
        if status in ok:
            return
        if status == 401:
            raise PermanentPeerError(NAME, f"{what}: HTTP 401, the WebDAV credentials are "
                                     "refused (HUB_DOCMGMT_USERNAME, HUB_DOCMGMT_PASSWORD)")
        if status in (403, 409, 507):
            raise PermanentPeerError(NAME, f"{what}: HTTP {status}", (FOLDER_REFUSED,))
        raise TransientPeerError(NAME, f"{what}: unexpected HTTP {status}")

    async def folder_exists(self, path: str) -> bool:
        response = await self._client.request("PROPFIND", path, content=PROPFIND_BODY,
                                              headers={"Depth": "0",
                                                       "Content-Type": "application/xml"})
        if response.status_code == 404:
            return False
        self._check("propfind", response, (207,))
        try:
            return multistatus_ok(response.content)
        except PeerFormatError as exc:
            raise TransientPeerError(NAME, f"propfind: {exc}") from None

    async def make_folder(self, path: str) -> None:
        """MKCOL; a folder that exists already (405) is fine."""
        response = await self._client.request("MKCOL", path)
        self._check("mkcol", response, (201, 405))

    async def put(self, path: str, content: bytes, content_type: str) -> bool:
        """PUT; True when it created the resource (201), False when it replaced it (204)."""
        response = await self._client.put(path, content=content,
                                          headers={"Content-Type": content_type})
        self._check("put", response, (200, 201, 204))
        return response.status_code == 201

    async def ping(self) -> str:
        response = await self._client.request("OPTIONS", "/")
        self._check("options", response, (200, 204))
        return "dav " + response.headers.get("dav", "?")

    async def aclose(self) -> None:
        await self._client.aclose()
