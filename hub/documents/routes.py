"""The CON-4 download route: ``GET /documents/{key}/{filename}?expires=…&sig=…``.

The hub serves the documents its mails link to (a signed PDF over the attachment limit).
A valid link answers the document's bytes; a link whose signature does not match (an
edited key, expiry or signature) answers 403, an expired one 410, each naming CON-4 and
saying in Japanese and English what to do next. Which process serves it does not matter:
the bytes come from the shared document store.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations.
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Response

from hub.documents.links import DOWNLOAD_PATH, LinkSigner, LinkState
from hub.documents.store import DocumentNotFoundError, DocumentStore
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
    when = at.isoformat()
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
                responses={200: {"content": {"application/pdf": {}}}})
    async def download(key: str, filename: str, expires: Annotated[int, Query()] = 0,
                       sig: Annotated[str, Query(max_length=128)] = "") -> Response:
        state = signer.check(key, expires, sig, clock())
        if state is LinkState.FORGED:
            raise _forged()
        if state is LinkState.EXPIRED:
            raise _expired(datetime.fromtimestamp(expires, UTC))
        try:
            doc = await anyio.to_thread.run_sync(store.stat, key)
            content = await anyio.to_thread.run_sync(store.get, key)
        except DocumentNotFoundError:
            raise _missing() from None
        disposition = f"attachment; filename*=UTF-8''{quote(doc.filename)}"
        return Response(content, media_type=doc.content_type,
                        headers={"Content-Disposition": disposition,
                                 "Cache-Control": "private, no-store"})

    return router
