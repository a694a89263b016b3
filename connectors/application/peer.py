"""Reference online application system (オンライン申請システム) for tests and the local default.

A real HTTP service on loopback that holds contractors' submissions (forms and
attachments, seed 002), announces each by a signed webhook, serves them for
polling, and takes corrections (補正依頼) back. APPLICATION-API:

- ``GET /api/v1/applications?after=<cursor>&limit=<n>`` →
  ``{"applications": [record, ...], "cursor": "<last seq>"}`` in submission order;
- ``GET /api/v1/applications/{id}`` → one record;
- ``GET /api/v1/applications/{id}/attachments/{attachment_id}`` → the file;
- ``POST /api/v1/applications/{id}/corrections`` (``Idempotency-Key`` = the
  correction id) → 201 ``{"reference": "C-000001"}``, the same reference again on a repeat;
- ``GET /api/v1/health``.

Every call needs ``Authorization: Bearer <token>``. The webhook is
``POST <subscriber>`` with ``{"event": "application.submitted", "application_id": ...}``,
``X-Signature-Timestamp: <unix seconds>`` and
``X-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI, Header, Query
from fastapi.responses import JSONResponse, Response

from connectors._shared.loopback import LoopbackServer, PeerFaults, install_faults, serve_forever
from connectors.application.settings import ApplicationSettings
from schemas.envelope import JST

__all__ = ["ApplicationPeer", "PeerAttachment", "create_app", "sign_webhook"]


@dataclass(frozen=True)
class PeerAttachment:
    kind: str
    filename: str
    content: bytes = field(repr=False)
    content_type: str = "application/pdf"


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class _State:
    token: str = field(repr=False)
    records: list[dict[str, Any]] = field(default_factory=list)
    files: dict[tuple[str, str], PeerAttachment] = field(default_factory=dict)
    corrections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, application_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r["id"] == application_id), None)


def create_app(state: _State, faults: PeerFaults) -> FastAPI:
    app = FastAPI(title="Reference online application system", docs_url=None, redoc_url=None)
    install_faults(app, faults)

    def denied(authorization: str) -> bool:
        return not hmac.compare_digest(authorization.encode(), f"Bearer {state.token}".encode())

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/applications")
    async def list_applications(after: int = Query(default=0, ge=0),
                                limit: int = Query(default=50, ge=1, le=500),
                                authorization: str = Header(default="")) -> Response:
        if denied(authorization):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        page = [r for r in state.records if r["seq"] > after][:limit]
        cursor = page[-1]["seq"] if page else after
        return JSONResponse({"applications": page, "cursor": str(cursor)})

    @app.get("/api/v1/applications/{application_id}")
    async def get_application(application_id: str,
                              authorization: str = Header(default="")) -> Response:
        if denied(authorization):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        record = state.record(application_id)
        if record is None:
            return JSONResponse({"error": "not-found"}, status_code=404)
        return JSONResponse(record)

    @app.get("/api/v1/applications/{application_id}/attachments/{attachment_id}")
    async def get_attachment(application_id: str, attachment_id: str,
                             authorization: str = Header(default="")) -> Response:
        if denied(authorization):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        found = state.files.get((application_id, attachment_id))
        if found is None:
            return JSONResponse({"error": "not-found"}, status_code=404)
        return Response(found.content, media_type=found.content_type)

    @app.post("/api/v1/applications/{application_id}/corrections")
    async def correct(application_id: str, body: dict[str, Any],
                      authorization: str = Header(default=""),
                      idempotency_key: str = Header(default="")) -> Response:
        if denied(authorization):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if state.record(application_id) is None:
            return JSONResponse({"error": "not-found"}, status_code=404)
        if not idempotency_key or not isinstance(body.get("items"), list) or not body["items"]:
            return JSONResponse({"error": "invalid", "detail": "items and Idempotency-Key "
                                 "are required"}, status_code=422)
        if idempotency_key in state.corrections:
            return JSONResponse({"reference": state.corrections[idempotency_key]["reference"]})
        reference = f"C-{len(state.corrections) + 1:06d}"
        state.corrections[idempotency_key] = {"reference": reference,
                                              "application_id": application_id, **body}
        return JSONResponse({"reference": reference}, status_code=201)

    return app


class ApplicationPeer:
    """The reference system on a loopback port; ``submit`` plays the contractor."""

    def __init__(self, *, token: str, port: int | None = None) -> None:
        self.faults = PeerFaults()
        self._state = _State(token=token)
        self._server = LoopbackServer(create_app(self._state, self.faults), port=port)
        self._webhook: tuple[str, str] | None = None
        self.webhook_failures = 0

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def corrections(self) -> dict[str, dict[str, Any]]:
        """Corrections received, by idempotency key."""
        return self._state.corrections

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def subscribe(self, url: str, secret: str) -> None:
        """Announce each new submission to ``url``, signed with ``secret``."""
        self._webhook = (url, secret)

    def submit(self, *, case_no: str, procedure: str, company: str,
               category: str = "建設工事", representative: str = "",
               answers: dict[str, str] | None = None,
               attachments: tuple[PeerAttachment, ...] = ()) -> str:
        """A contractor sends one application; returns its id. Announced by webhook."""
        seq = len(self._state.records) + 1
        app_id = f"A{seq:06d}"
        listed = []
        for n, attachment in enumerate(attachments, start=1):
            att_id = f"F{n}"
            self._state.files[(app_id, att_id)] = attachment
            listed.append({"id": att_id, "kind": attachment.kind, "filename": attachment.filename,
                           "content_type": attachment.content_type,
                           "size": len(attachment.content),
                           "sha256": hashlib.sha256(attachment.content).hexdigest()})
        self._state.records.append({
            "seq": seq, "id": app_id, "case_no": case_no, "procedure": procedure,
            "category": category,
            "applicant": {"company": company, "representative": representative},
            "submitted_at": datetime.now(JST).isoformat(timespec="seconds"),
            "answers": answers or {}, "attachments": listed,
        })
        self._announce(app_id)
        return app_id

    def _announce(self, app_id: str) -> None:
        if self._webhook is None:
            return
        url, secret = self._webhook
        body = json.dumps({"event": "application.submitted", "application_id": app_id}).encode()
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Signature-Timestamp": str(stamp),
                   "X-Signature": sign_webhook(secret, stamp, body)}
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=5.0)
            if response.status_code >= 300:
                self.webhook_failures += 1
        except httpx.HTTPError:
            # The receiver is down: polling picks the submission up later.
            self.webhook_failures += 1


def main() -> None:
    """``python -m connectors.application.peer``: the local default on
    ``HUB_APPLICATION_BASE_URL`` (empty; submissions come from ``submit``)."""
    settings = ApplicationSettings()
    serve_forever(ApplicationPeer(token=settings.api_token.get_secret_value(),
                                   port=urlparse(settings.base_url).port))


if __name__ == "__main__":
    main()
