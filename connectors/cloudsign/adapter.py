"""The outbound adapter to CloudSign's Web API (the subset in ``peer``'s docstring).

Methods and paths as the published OpenAPI document has them (0.31.0, vendored in
tests/data/ and checked there): ``POST /documents/{id}`` sends a document (``PUT``
only updates its data). One attempt per call; the Guard retries. The access token
from ``POST /token`` is kept until shortly before it expires; a 401 on any call
drops it and is transient, so the retry buys a fresh one. A refused ``client_id``
(400 ``invalid_client``, 403 ``forbidden``) is permanent: an operator fixes the
setting. Refusals of a request (400, 403, 404, 413, 415) are permanent.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors._shared import PermanentPeerError, TransientPeerError
from connectors._shared.httpkit import json_body, raise_for_peer
from connectors.cloudsign.mapping import PeerDocument, PeerFormatError, document_from_peer
from connectors.cloudsign.settings import CloudSignSettings

__all__ = ["NAME", "CloudSignAdapter"]

NAME = "cloudsign"
_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")


def _error_code(response: httpx.Response) -> str:
    """`` (error)`` from CloudSign's errorModel ``{error, message}``, if it is one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    return f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""


class CloudSignAdapter:
    def __init__(self, settings: CloudSignSettings,
                 client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.base_url, timeout=settings.timeout_s,
            headers={"Accept": "application/json"})
        self._token: tuple[str, float] | None = None

    async def _bearer(self) -> dict[str, str]:
        if self._token is None or self._token[1] <= time.monotonic():
            response = await self._client.post(
                "/token", data={"client_id": self._settings.client_id.get_secret_value()})
            raise_for_peer(NAME, "token", response)
            if response.status_code in (400, 401, 403):
                raise PermanentPeerError(NAME, "token: CloudSign refused the client_id "
                                         "(check HUB_CLOUDSIGN_CLIENT_ID)")
            body = json_body(NAME, "token", response)
            token = body.get("access_token") if isinstance(body, dict) else None
            expires = body.get("expires_in", 3600) if isinstance(body, dict) else 0
            if not isinstance(token, str) or not isinstance(expires, int):
                raise TransientPeerError(NAME, "token: answer has no access_token")
            self._token = (token, time.monotonic() + expires - self._settings.token_margin_s)
        return {"Authorization": f"Bearer {self._token[0]}"}

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        response = await self._client.request(method, path, headers=await self._bearer(),
                                              **kwargs)
        raise_for_peer(NAME, what, response)
        if response.status_code == 401:
            self._token = None  # expired or revoked: the retry fetches a new one
            raise TransientPeerError(NAME, f"{what}: access token refused")
        if response.status_code != 200:
            raise PermanentPeerError(NAME, f"{what}: HTTP {response.status_code}"
                                     f"{_error_code(response)}")
        return response

    async def _document(self, method: str, path: str, what: str,
                        **kwargs: Any) -> PeerDocument:
        response = await self._call(method, path, what, **kwargs)
        try:
            return document_from_peer(json_body(NAME, what, response))
        except PeerFormatError as exc:
            raise TransientPeerError(NAME, f"{what}: {exc}") from None

    async def create_document(self, form: dict[str, str]) -> PeerDocument:
        return await self._document("POST", "/documents", "create", data=form)

    async def add_participant(self, document_id: str, form: dict[str, str]) -> PeerDocument:
        return await self._document("POST", f"/documents/{document_id}/participants",
                                    "participant", data=form)

    async def upload_file(self, document_id: str, name: str, content: bytes) -> PeerDocument:
        return await self._document(
            "POST", f"/documents/{document_id}/files", "upload", data={"name": name},
            files={"uploadfile": (name, content, "application/pdf")})

    async def send(self, document_id: str) -> PeerDocument:
        """``POST /documents/{id}``: sends a draft (先方確認中 after it); on a document
        already sent it is a reminder, so a retried send changes nothing."""
        return await self._document("POST", f"/documents/{document_id}", "send")

    async def list_documents(self, *, since: datetime, page: int = 1,
                             ) -> tuple[int, list[PeerDocument]]:
        """``GET /documents``: one page (at most 100) of the documents last processed at or
        after ``since``, with their files and parties; and how many there are in all."""
        response = await self._call("GET", "/documents", "list", params={
            "page": page, "status": -1,
            "from": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
        body = json_body(NAME, "list", response)
        found = body.get("documents") if isinstance(body, dict) else None
        total = body.get("total") if isinstance(body, dict) else None
        if not isinstance(found, list) or not isinstance(total, int):
            raise TransientPeerError(NAME, "list: answer is not a documentListModel")
        try:
            return total, [document_from_peer(d) for d in found]
        except PeerFormatError as exc:
            raise TransientPeerError(NAME, f"list: {exc}") from None

    async def get_document(self, document_id: str) -> PeerDocument:
        return await self._document("GET", f"/documents/{document_id}", "get")

    async def download_file(self, document_id: str, file_id: str) -> bytes:
        return await self._pdf(f"/documents/{document_id}/files/{file_id}", "download")

    async def download_certificate(self, document_id: str) -> bytes:
        """合意締結証明書 of a concluded document (CON-6)."""
        return await self._pdf(f"/documents/{document_id}/certificate", "certificate")

    async def _pdf(self, path: str, what: str) -> bytes:
        response = await self._call("GET", path, what)
        content = response.content
        if len(content) > self._settings.max_download_bytes:
            raise PermanentPeerError(NAME, f"{what}: larger than "
                                     f"{self._settings.max_download_bytes} bytes")
        if not content.startswith(b"%PDF-"):
            raise TransientPeerError(NAME, f"{what}: answer is not a PDF")
        return content

    async def ping(self) -> str:
        """CloudSign has no health endpoint: buying a fresh token shows it is up."""
        self._token = None
        await self._bearer()
        return "token issued"

    async def aclose(self) -> None:
        await self._client.aclose()
