"""Reference CloudSign server: the subset of CloudSign's Web API the hub uses, on loopback.

It follows CloudSign's published OpenAPI document ("クラウドサイン Web API" 0.31.0,
vendored in tests/data/ where a contract test checks every request and answer against
it) in methods, paths, statuses, error shapes, optional fields and upload limits:

- ``POST /token`` (form ``client_id``) → accessTokenModel; the same token again while it
  is valid; 400 ``invalid_request`` (empty) or ``invalid_client`` (unknown), 403
  ``forbidden`` for a disabled user (:meth:`CloudSignPeer.disable_client`).
- ``POST /documents`` (form ``title``, ``note``, ``message``, all optional) → documentModel
- ``GET /documents`` (``page`` of 100, ``status``, ``from``/``to`` on the last processing
  time) → documentListModel ``{total, page, documents}``;
- ``GET /documents/{id}``; ``PUT`` updates its data (never sends); ``POST`` sends a draft
  (status 0 → 1; 400 without a recipient or a file) or reminds (status 1);
  403 ``not_acceptable`` in any other status; ``DELETE`` removes a draft (204).
- ``POST /documents/{id}/participants`` (form ``name`` required, ``email``,
  ``organization``): 400 on a missing or duplicate email, 409 past 128 recipients.
- ``POST /documents/{id}/files`` (multipart ``name``, ``uploadfile``): 415 for a part
  that is not a PDF or a body that is not multipart; 400 for an empty file, one without
  ``%PDF-`` at the start or ``%%EOF`` at the end, past 50 MB or 100 files a document;
  413 for a request over 20 MB. Drafts only (403 ``not_acceptable``).
- ``GET /documents/{id}/files/{file_id}`` → the PDF (sealed once concluded);
  ``GET /documents/{id}/certificate`` → 合意締結証明書, 404 until concluded.
- Errors are errorModel ``{"error", "message"}``: 400 ``bad_request`` for a missing or
  malformed Authorization header or bad parameters (never FastAPI's 422), 401
  ``unauthorized`` for an invalid token, 404 ``not_found``, 405 ``method_not_allowed``.
- Statuses: documents 0 下書き, 1 先方確認中, 2 締結済, 3 取消・却下; participants 2 下書き
  (before sending), 6 送信済み (the sender), 3 配信待ち, 4 確認待ち, 8 押印または入力済み,
  9 却下, 10 キャンセル. ``processed_at`` and ``sent_at`` are absent until they happen
  (the spec's strings are not nullable).
- webhook: ``POST <hook url>`` with ``{"documentID", "status", "userID", "email",
  "text"}`` and no signature header, on conclusion (2) and on 取消・却下 (3).

The parties' side is simulated: :meth:`CloudSignPeer.agree_all` concludes a sent
document (a real PDF signature, see ``signing``), :meth:`CloudSignPeer.reject`
rejects it.
"""

from __future__ import annotations

import hmac
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors._shared.loopback import LoopbackServer, PeerFaults, install_faults, serve_forever
from connectors.cloudsign.settings import CloudSignSettings
from connectors.cloudsign.signing import seal_pdf

__all__ = ["CloudSignPeer", "create_app", "render_certificate"]

SENDER_ID = "00000000-0000-4000-8000-000000000001"
SENDER_EMAIL = "keiyaku@city.example.jp"
MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""One upload request, the whole body (the spec's 20 MB)."""
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_DOCUMENT_FILES = 100
MAX_RECIPIENTS = 128
_FONT = "HeiseiKakuGo-W5"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "True": True, "true": True,
         "0": False, "f": False, "F": False, "FALSE": False, "False": False, "false": False}
_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
           405: "method_not_allowed", 409: "conflict", 413: "too_large_request",
           415: "unsupported_media_type", 500: "internal_server_error"}
pdfmetrics.registerFont(UnicodeCIDFont(_FONT))

# participant statuses (participantModel.status)
P_DRAFT, P_WAITING, P_TO_CONFIRM, P_SENT, P_DONE, P_DECLINED, P_CANCELLED = 2, 3, 4, 6, 8, 9, 10


def _now() -> str:
    """RFC 3339 in UTC with microseconds, as the spec's ``YYYY-MM-DDThh:mm:ss.SSSSSSZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    """CloudSign's errorModel."""
    return JSONResponse({"error": code or _ERRORS.get(status, "bad_request"),
                         "message": message}, status_code=status)


@dataclass
class _State:
    client_id: str = field(repr=False)
    token_ttl_s: int = 3600
    tokens: dict[str, datetime] = field(default_factory=dict, repr=False)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)
    certificates: dict[str, bytes] = field(default_factory=dict, repr=False)
    client_disabled: bool = False
    """The client's user is disabled (or calls from an address CloudSign restricts)."""

    def refusal(self, authorization: str | None) -> JSONResponse | None:
        """400 without a well-formed ``Authorization: Bearer``, 401 for a token that is
        not (or no longer) valid, ``None`` for a good one."""
        if not authorization or not authorization.startswith("Bearer "):
            return error(400, "access token is not set")
        expiry = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        if expiry is None or expiry <= datetime.now(UTC):
            return error(401, "access token is invalid or expired")
        return None

    def live_token(self) -> tuple[str, int] | None:
        now = datetime.now(UTC)
        for value, expiry in self.tokens.items():
            if expiry > now:
                return value, int((expiry - now).total_seconds())
        return None


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
        pdf.drawString(60, 690 - 16 * i, f"{p['order']}. {p['name']} <{p['email']}> "
                                         f"合意日時: {p.get('processed_at', '-')}")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _is_pdf_part(part: UploadFile) -> bool:
    kind = (part.content_type or "").split(";")[0].strip().lower()
    return kind == "application/pdf" or (kind in ("", "application/octet-stream")
                                         and (part.filename or "").lower().endswith(".pdf"))


def _ends_with_eof(content: bytes) -> bool:
    return content.rstrip(b"\r\n\t \x00").endswith(b"%%EOF")


def create_app(state: _State, faults: PeerFaults) -> FastAPI:  # noqa: PLR0915 -- the routes
    app = FastAPI(title="Reference CloudSign", docs_url=None, redoc_url=None,
                  openapi_url=None)
    install_faults(app, faults)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        return error(400, f"invalid request parameters: {where}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        return {k: v for k, v in data.items() if isinstance(v, str)}

    def document_of(doc_id: str) -> dict[str, Any] | None:
        return state.documents.get(doc_id)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/token")
    async def token(request: Request) -> Response:
        client_id = (await form(request)).get("client_id", "")
        if not client_id:
            return error(400, "client_id is empty", "invalid_request")
        if not hmac.compare_digest(client_id.encode(), state.client_id.encode()):
            return error(400, "client_id is not valid", "invalid_client")
        if state.client_disabled:
            return error(403, "the client's user is disabled", "forbidden")
        live = state.live_token()  # the spec: no new token while one is valid
        if live is None:
            value = str(uuid.uuid4())
            state.tokens[value] = datetime.now(UTC) + timedelta(seconds=state.token_ttl_s)
            live = (value, state.token_ttl_s)
        return JSONResponse({"access_token": live[0], "token_type": "Bearer",
                             "expires_in": live[1]})

    @app.post("/documents")
    async def create(request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        fields = await form(request)
        title, message = fields.get("title", ""), fields.get("message", "")
        if len(title) > 500 or len(message) > 16000:
            return error(400, "title or message too long")
        doc_id, now = str(uuid.uuid4()), _now()
        sender = {"id": SENDER_ID, "email": SENDER_EMAIL, "name": "足利市 契約管財課",
                  "organization": "足利市", "order": 0, "status": P_DRAFT}
        state.documents[doc_id] = {
            "id": doc_id, "user_id": SENDER_ID, "title": title, "message": message,
            "note": fields.get("note", ""), "status": 0,
            "can_transfer": _BOOL.get(fields.get("can_transfer", "false"), False),
            "private": _BOOL.get(fields.get("private", "false"), False),
            "participants": [sender], "files": [], "created_at": now, "updated_at": now,
            "last_processed_at": now,
        }
        return JSONResponse(state.documents[doc_id])

    @app.get("/documents")
    async def documents(request: Request, page: str = "1", status: str = "-1",
                        since: str | None = Query(default=None, alias="from"),
                        until: str | None = Query(default=None, alias="to")) -> Response:
        """書類の一覧: 100 a page (an unusable page is 1), filtered by status and by the
        last processing time (``from``, ``to``, RFC 3339), oldest first."""
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        try:
            number = max(1, int(page))
        except ValueError:
            number = 1
        try:
            wanted = int(status)
            bounds = [datetime.fromisoformat(b.replace("Z", "+00:00")) if b else None
                      for b in (since, until)]
        except ValueError:
            return error(400, "status, from or to is not valid")
        found = [d for d in state.documents.values()
                 if (wanted == -1 or d["status"] == wanted)
                 and (bounds[0] is None
                      or datetime.fromisoformat(d["last_processed_at"]) >= bounds[0])
                 and (bounds[1] is None
                      or datetime.fromisoformat(d["last_processed_at"]) <= bounds[1])]
        return JSONResponse({"total": len(found), "page": number,
                             "documents": found[(number - 1) * 100:number * 100]})

    @app.get("/documents/{doc_id}")
    async def get(doc_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        doc = document_of(doc_id)
        return JSONResponse(doc) if doc else error(404, "document not found")

    @app.put("/documents/{doc_id}")
    async def update(doc_id: str, request: Request) -> Response:
        """書類のデータを更新: title, note, message, flags. It never sends."""
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        doc = document_of(doc_id)
        if doc is None:
            return error(404, "document not found")
        fields = await form(request)
        for name in ("title", "note", "message"):
            if name in fields:
                doc[name] = fields[name]
        for name in ("can_transfer", "private"):
            if name in fields:
                doc[name] = _BOOL.get(fields[name], doc[name])
        doc["updated_at"] = _now()
        return JSONResponse(doc)

    @app.post("/documents/{doc_id}")
    async def send(doc_id: str, request: Request) -> Response:
        """書類を送信またはリマインド: a draft is sent, a document being confirmed reminded."""
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        doc = document_of(doc_id)
        if doc is None:
            return error(404, "document not found")
        if doc["status"] == 1:
            return JSONResponse(doc)  # a reminder
        if doc["status"] != 0:
            return error(403, "only a draft or a document being confirmed", "not_acceptable")
        if not doc["files"] or len(doc["participants"]) < 2:
            return error(400, "a document needs a sender, a recipient and a file")
        now = _now()
        sender, first, *rest = doc["participants"]
        sender["status"], first["status"] = P_SENT, P_TO_CONFIRM
        for p in rest:
            p["status"] = P_WAITING
        doc.update(status=1, sent_at=now, updated_at=now)
        return JSONResponse(doc)

    @app.delete("/documents/{doc_id}")
    async def delete(doc_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        doc = document_of(doc_id)
        if doc is None:
            return error(404, "document not found")
        if doc["status"] != 0:
            return error(400, "only a draft can be deleted")
        del state.documents[doc_id]
        return Response(status_code=204)

    @app.post("/documents/{doc_id}/participants")
    async def participant(doc_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        doc = document_of(doc_id)
        if doc is None:
            return error(404, "document not found")
        if doc["status"] != 0:
            return error(403, "recipients are added to drafts only", "not_acceptable")
        fields = await form(request)
        name, email = fields.get("name", ""), fields.get("email", "")
        organization = fields.get("organization", "")
        if not name or len(name) > 64 or len(organization) > 64:
            return error(400, "name is empty or too long, or organization too long")
        if not _EMAIL.match(email) or len(email) > 254:
            return error(400, "email is empty or not valid")
        if any(p["email"].lower() == email.lower() for p in doc["participants"]):
            return error(400, "email is already a recipient")
        if len(doc["participants"]) > MAX_RECIPIENTS:
            return error(409, "too many recipients")
        entry: dict[str, Any] = {"id": str(uuid.uuid4()), "email": email, "name": name,
                                 "order": len(doc["participants"]), "status": P_DRAFT}
        if organization:
            entry["organization"] = organization
        doc["participants"].append(entry)
        doc["updated_at"] = _now()
        return JSONResponse(doc)

    @app.post("/documents/{doc_id}/files")
    async def upload(doc_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return error(413, "the request is larger than 20 MB")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(415, "send the file as multipart/form-data")
        doc = document_of(doc_id)
        if doc is None:
            return error(404, "document not found")
        if doc["status"] != 0:
            return error(403, "files are added to drafts only", "not_acceptable")
        data = await request.form(max_files=1, max_fields=4)
        part = data.get("uploadfile")
        if not isinstance(part, UploadFile):
            return error(400, "uploadfile is missing")
        if not _is_pdf_part(part):
            return error(415, "only PDF files are accepted")
        content = await part.read()
        if not content:
            return error(400, "the uploaded file is empty")
        if not content.startswith(b"%PDF-"):
            return error(400, "the file does not start with %PDF-")
        if not _ends_with_eof(content):
            return error(400, "the file does not end with %%EOF")
        total = sum(len(state.files[(doc_id, f["id"])]) for f in doc["files"])
        if total + len(content) > MAX_DOCUMENT_BYTES:
            return error(400, "a document's files may total 50 MB")
        if len(doc["files"]) >= MAX_DOCUMENT_FILES:
            return error(400, "a document may have 100 files")
        name = data.get("name")
        file_id = str(uuid.uuid4())
        state.files[(doc_id, file_id)] = content
        doc["files"].append({"id": file_id, "order": len(doc["files"]),
                             "name": name if isinstance(name, str) and name
                             else (part.filename or "file.pdf")})
        doc["updated_at"] = _now()
        return JSONResponse(doc)

    @app.get("/documents/{doc_id}/files/{file_id}")
    async def download(doc_id: str, file_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        content = state.files.get((doc_id, file_id))
        if content is None:
            return error(404, "document or file not found")
        return Response(content, media_type="application/pdf")

    @app.get("/documents/{doc_id}/certificate")
    async def certificate(doc_id: str, request: Request) -> Response:
        if (refused := state.refusal(request.headers.get("authorization"))) is not None:
            return refused
        content = state.certificates.get(doc_id)
        if content is None:
            return error(404, "no such concluded document")
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

    def document_ids(self) -> list[str]:
        return list(self._state.documents)

    def disable_client(self, disabled: bool = True) -> None:
        """The client's user is disabled: ``/token`` answers 403 ``forbidden``."""
        self._state.client_disabled = disabled

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as after an hour)."""
        self._state.tokens.clear()

    def agree_all(self, doc_id: str, *, notify: bool = True) -> None:
        """Every party agrees in order; CloudSign seals the files (CON-2, CON-5)."""
        doc = self._state.documents[doc_id]
        if doc["status"] != 1:
            raise ValueError(f"document {doc_id} is not waiting for agreement")
        for p in doc["participants"][1:]:
            p.update(status=P_DONE, processed_at=_now())
        for f in doc["files"]:
            key = (doc_id, f["id"])
            self._state.files[key] = seal_pdf(self._state.files[key])
        now = _now()
        doc.update(status=2, updated_at=now, last_processed_at=now)
        self._state.certificates[doc_id] = render_certificate(doc)
        if notify:
            self.notify(doc_id)

    def reject(self, doc_id: str, *, notify: bool = True) -> None:
        """The first recipient rejects the document (同意せず却下する); the rest are
        cancelled."""
        doc = self._state.documents[doc_id]
        now = _now()
        first, *rest = doc["participants"][1:]
        first.update(status=P_DECLINED, processed_at=now)
        for p in rest:
            p["status"] = P_CANCELLED
        doc.update(status=3, updated_at=now, last_processed_at=now)
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
