"""Reference CloudSign server: the subset of CloudSign's Web API the hub uses, on loopback.

Endpoints (CloudSign Web API 仕様書, OpenAPI; help.cloudsign.jp "クラウドサイン Web API
利用ガイド" and "Webhook 機能"), all but ``/token`` with ``Authorization: Bearer``:

- ``POST /token`` (form ``client_id``) → ``{"access_token", "token_type", "expires_in"}``
- ``POST /documents`` (form ``title``, ``message``, ``note``) → documentModel
- ``GET /documents/{id}``; ``PUT /documents/{id}`` sends it (status 0 → 1)
- ``POST /documents/{id}/participants`` (form ``email``, ``name``, ``organization``)
- ``POST /documents/{id}/files`` (multipart ``name``, ``uploadfile``; PDF only here)
- ``GET /documents/{id}/files/{file_id}`` → the PDF (signed once concluded)
- ``GET /documents/{id}/certificate`` → 合意締結証明書 (PDF), once concluded
- webhook: ``POST <hook url>`` with ``{"documentID", "status", "userID", "email",
  "text"}`` and no signature header, on conclusion (2) and on 取消・却下 (3).

The parties' side is simulated: :meth:`CloudSignPeer.agree_all` concludes a sent
document (a real PDF signature, see ``signing``), :meth:`CloudSignPeer.reject`
rejects it.
"""

from __future__ import annotations

import hmac
import io
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI, File, Form, Header, UploadFile
from fastapi.responses import JSONResponse, Response
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from connectors._shared.loopback import LoopbackServer, PeerFaults, install_faults, serve_forever
from connectors.cloudsign.settings import CloudSignSettings
from connectors.cloudsign.signing import seal_pdf
from schemas.envelope import JST

__all__ = ["CloudSignPeer", "create_app", "render_certificate"]

SENDER_ID = "00000000-0000-4000-8000-000000000001"
SENDER_EMAIL = "keiyaku@city.example.jp"
AuthHeader = Annotated[str, Header(alias="Authorization")]
_FONT = "HeiseiKakuGo-W5"
pdfmetrics.registerFont(UnicodeCIDFont(_FONT))


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class _State:
    client_id: str = field(repr=False)
    token_ttl_s: int = 3600
    tokens: dict[str, datetime] = field(default_factory=dict, repr=False)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)
    certificates: dict[str, bytes] = field(default_factory=dict, repr=False)

    def authorized(self, authorization: str) -> bool:
        token = authorization.removeprefix("Bearer ").strip()
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > datetime.now(UTC)


def render_certificate(document: dict[str, Any]) -> bytes:
    """合意締結証明書: who agreed to which document, and when (CON-6)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setFont(_FONT, 16)
    pdf.drawString(200, 780, "合意締結証明書")
    pdf.setFont(_FONT, 10)
    pdf.drawString(60, 740, f"書類ID: {document['id']}")
    pdf.drawString(60, 724, f"件名: {document['title']}")
    for i, p in enumerate(document["participants"]):
        pdf.drawString(60, 690 - 16 * i,
                       f"{p['order']}. {p['name']} <{p['email']}> 合意日時: {p['processed_at']}")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def create_app(state: _State, faults: PeerFaults) -> FastAPI:
    app = FastAPI(title="Reference CloudSign", docs_url=None, redoc_url=None)
    install_faults(app, faults)
    unauthorized = JSONResponse({"error": "unauthorized"}, status_code=401)
    not_found = JSONResponse({"error": "not found"}, status_code=404)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/token")
    async def token(client_id: Annotated[str, Form()]) -> Response:
        if not hmac.compare_digest(client_id.encode(), state.client_id.encode()):
            return JSONResponse({"error": "invalid client_id"}, status_code=401)
        value = secrets.token_urlsafe(24)
        state.tokens[value] = datetime.now(UTC) + timedelta(seconds=state.token_ttl_s)
        return JSONResponse({"access_token": value, "token_type": "Bearer",
                             "expires_in": state.token_ttl_s})

    @app.post("/documents")
    async def create(title: Annotated[str, Form()], authorization: AuthHeader = "",
                     message: Annotated[str, Form()] = "",
                     note: Annotated[str, Form()] = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        doc_id = str(uuid.uuid4())
        sender = {"id": SENDER_ID, "email": SENDER_EMAIL, "name": "足利市 契約管財課",
                  "organization": "足利市", "order": 0, "status": 0, "processed_at": None}
        state.documents[doc_id] = {
            "id": doc_id, "user_id": SENDER_ID, "title": title, "message": message,
            "note": note, "status": 0, "participants": [sender], "files": [],
            "created_at": _now(), "updated_at": _now(), "sent_at": None,
        }
        return JSONResponse(state.documents[doc_id])

    @app.get("/documents/{doc_id}")
    async def get(doc_id: str, authorization: AuthHeader = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        doc = state.documents.get(doc_id)
        return JSONResponse(doc) if doc else not_found

    @app.put("/documents/{doc_id}")
    async def send(doc_id: str, authorization: AuthHeader = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        doc = state.documents.get(doc_id)
        if doc is None:
            return not_found
        if doc["status"] != 0 or not doc["files"] or len(doc["participants"]) < 2:
            return JSONResponse({"error": "document needs files and a recipient, as a draft"},
                                status_code=400)
        doc.update(status=1, sent_at=_now(), updated_at=_now())
        return JSONResponse(doc)

    @app.post("/documents/{doc_id}/participants")
    async def participant(doc_id: str, email: Annotated[str, Form()],
                          name: Annotated[str, Form()], authorization: AuthHeader = "",
                          organization: Annotated[str, Form()] = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        doc = state.documents.get(doc_id)
        if doc is None:
            return not_found
        doc["participants"].append({
            "id": str(uuid.uuid4()), "email": email, "name": name,
            "organization": organization, "order": len(doc["participants"]), "status": 0,
            "processed_at": None})
        return JSONResponse(doc)

    @app.post("/documents/{doc_id}/files")
    async def upload(doc_id: str, name: Annotated[str, Form()],
                     uploadfile: Annotated[UploadFile, File()],
                     authorization: AuthHeader = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        doc = state.documents.get(doc_id)
        if doc is None:
            return not_found
        content = await uploadfile.read()
        if not content.startswith(b"%PDF-"):
            return JSONResponse({"error": "only PDF files are accepted"}, status_code=400)
        file_id = str(uuid.uuid4())
        state.files[(doc_id, file_id)] = content
        doc["files"].append({"id": file_id, "name": name, "order": len(doc["files"])})
        return JSONResponse(doc)

    @app.get("/documents/{doc_id}/files/{file_id}")
    async def download(doc_id: str, file_id: str, authorization: AuthHeader = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        content = state.files.get((doc_id, file_id))
        if content is None:
            return not_found
        return Response(content, media_type="application/pdf")

    @app.get("/documents/{doc_id}/certificate")
    async def certificate(doc_id: str, authorization: AuthHeader = "") -> Response:
        if not state.authorized(authorization):
            return unauthorized
        content = state.certificates.get(doc_id)
        if content is None:
            return not_found
        return Response(content, media_type="application/pdf")

    return app


class CloudSignPeer:
    """The reference CloudSign on a loopback port, with the parties' side simulated."""

    def __init__(self, *, client_id: str, port: int | None = None,
                 token_ttl_s: int = 3600) -> None:
        self.faults = PeerFaults()
        self._state = _State(client_id=client_id, token_ttl_s=token_ttl_s)
        self._server = LoopbackServer(create_app(self._state, self.faults), port=port)
        self.hook_url: str | None = None

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def document(self, doc_id: str) -> dict[str, Any]:
        return self._state.documents[doc_id]

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as after an hour)."""
        self._state.tokens.clear()

    def agree_all(self, doc_id: str, *, notify: bool = True) -> None:
        """Every party agrees in order; CloudSign seals the files (CON-2, CON-5)."""
        doc = self._state.documents[doc_id]
        if doc["status"] != 1:
            raise ValueError(f"document {doc_id} is not waiting for agreement")
        for p in doc["participants"]:
            p.update(status=2, processed_at=datetime.now(JST).isoformat(timespec="seconds"))
        for f in doc["files"]:
            key = (doc_id, f["id"])
            self._state.files[key] = seal_pdf(self._state.files[key])
        doc.update(status=2, updated_at=_now(), last_processed_at=_now())
        self._state.certificates[doc_id] = render_certificate(doc)
        if notify:
            self.notify(doc_id)

    def reject(self, doc_id: str, *, notify: bool = True) -> None:
        """The contractor rejects the document (同意せず却下する)."""
        doc = self._state.documents[doc_id]
        doc.update(status=3, updated_at=_now())
        if notify:
            self.notify(doc_id)

    def notify(self, doc_id: str, status: int | None = None) -> int:
        """Send the webhook for ``doc_id`` (``status`` may lie, as a forger would)."""
        if self.hook_url is None:
            raise RuntimeError("no hook URL configured")
        doc = self._state.documents.get(doc_id, {"title": "?", "status": 1})
        shown = doc["status"] if status is None else status
        word = {2: "COMPLETED", 3: "CANCELED"}.get(shown, "BOUNCED")
        body = {"documentID": doc_id, "status": shown, "userID": SENDER_ID,
                "email": SENDER_EMAIL, "text": f"{word} : {doc['title']}"}
        response = httpx.post(self.hook_url, json=body,
                              headers={"User-Agent": "CloudSignWebHook"}, timeout=5.0)
        return response.status_code


def main() -> None:
    """``python -m connectors.cloudsign.peer``: the local default on
    ``HUB_CLOUDSIGN_BASE_URL``, accepting ``HUB_CLOUDSIGN_CLIENT_ID``."""
    settings = CloudSignSettings()
    serve_forever(CloudSignPeer(client_id=settings.client_id.get_secret_value(),
                                 port=urlparse(settings.base_url).port))


if __name__ == "__main__":
    main()
