"""The CON-4 download route: ``GET /documents/{key}/{filename}?expires=…&sig=…``.

The hub serves the documents its mails link to (a signed PDF over the attachment limit).
A valid link answers the document's bytes; a browser (``Accept: text/html``) gets the
download page first (file, size, SHA-256, until when the link works), whose button asks
for the bytes (``&download=1``). A link whose signature does not match (an edited key,
expiry or signature) answers 403, an expired one 410, each naming CON-4 and saying in
Japanese and English what to do next, as JSON or, for a browser, as a page. Which
process serves it does not matter: the bytes come from the shared document store.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations.
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Request, Response

from hub.contract.pages import render, wants_html
from hub.documents.links import DOWNLOAD_PATH, LinkSigner, LinkState
from hub.documents.store import DocumentNotFoundError, DocumentStore, StoredDocument
from schemas.envelope import JST
from schemas.rejection import RuleViolation

__all__ = ["download_router"]


def _refusal(status: int, ja: str, en: str, next_ja: str, next_en: str) -> HTTPException:
    violation = RuleViolation(rule_id="CON-4", message_ja=ja, message_en=en,
                              next_step_ja=next_ja, next_step_en=next_en, field="link")
    return HTTPException(status, detail={"violations": [violation.model_dump(mode="json")]})


def _forged() -> HTTPException:
    return _refusal(403, "このダウンロードリンクは正しくありません。",
                    "This download link is not valid.",
                    "メールに記載されたリンクをそのまま開いてください。解決しない場合は発注者に"
                    "お問い合わせください。",
                    "Open the link exactly as it is in the mail; if that fails, contact the "
                    "procuring entity.")


def _expired(at: datetime) -> HTTPException:
    when = f"{at.astimezone(JST):%Y/%m/%d %H:%M} JST"
    return _refusal(410, f"このダウンロードリンクの有効期限（{when}）を過ぎています。",
                    f"This download link expired at {when}.",
                    "発注者に文書の再送を依頼してください。",
                    "Ask the procuring entity to send the document again.")


def _missing() -> HTTPException:
    return _refusal(404, "この文書は保存されていません。", "This document is not stored.",
                    "発注者にお問い合わせください。", "Contact the procuring entity.")


def download_router(store: DocumentStore, signer: LinkSigner,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> APIRouter:
    router = APIRouter(tags=["documents"])

    @router.get(DOWNLOAD_PATH + "/{key}/{filename}", response_class=Response,
                responses={200: {"content": {"application/pdf": {}, "text/html": {}}}})
    async def download(key: str, filename: str, request: Request, *,
                       expires: Annotated[int, Query()] = 0,
                       sig: Annotated[str, Query(max_length=128)] = "",
                       download: Annotated[bool, Query(
                           description="The bytes even for a browser (the page's button)."
                       )] = False) -> Response:
        page = wants_html(request) and not download
        try:
            state = signer.check(key, expires, sig, clock())
            if state is LinkState.FORGED:
                raise _forged()
            if state is LinkState.EXPIRED:
                raise _expired(datetime.fromtimestamp(expires, UTC))
            try:
                doc = await anyio.to_thread.run_sync(store.stat, key)
                if page:
                    return _download_page(doc, request, expires)
                content = await anyio.to_thread.run_sync(store.get, key)
            except DocumentNotFoundError:
                raise _missing() from None
        except HTTPException as exc:
            if not page:
                raise
            return _refusal_page(exc)
        disposition = f"attachment; filename*=UTF-8''{quote(doc.filename)}"
        return Response(content, media_type=doc.content_type,
                        headers={"Content-Disposition": disposition,
                                 "Cache-Control": "private, no-store"})

    return router


_HEADINGS = {403: ("このダウンロードリンクは正しくありません", "This download link is not valid"),
             410: ("ダウンロードリンクの有効期限が切れています", "This download link has expired"),
             404: ("文書が見つかりません", "The document is not stored")}


def _refusal_page(exc: HTTPException) -> Response:
    detail = exc.detail
    assert isinstance(detail, dict)
    violation = RuleViolation.model_validate(detail["violations"][0])
    ja, en = _HEADINGS.get(exc.status_code, _HEADINGS[403])
    return render("refusal.html.j2", exc.status_code, heading_ja=ja, heading_en=en,
                  v=violation, status=exc.status_code, resend_action=None, back=None)


def _download_page(doc: StoredDocument, request: Request, expires: int) -> Response:
    until = datetime.fromtimestamp(expires, UTC).astimezone(JST)
    return render("download.html.j2", heading_ja="締結済み契約書のダウンロード",
                  heading_en="Download the concluded contract", filename=doc.filename,
                  size=f"{doc.size:,}", sha256=doc.key, until=f"{until:%Y/%m/%d %H:%M}",
                  download_url=f"{request.url.path}?{request.url.query}&download=1")
