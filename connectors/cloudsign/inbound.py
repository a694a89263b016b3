"""CloudSign's completion webhook, received by the hub's HTTP gateway.

CloudSign POSTs ``{"documentID", "status", "userID", "email", "text"}`` when a
document is concluded (2) or rejected/withdrawn (3), with no signature header
(help.cloudsign.jp, "Webhook 機能"). Anyone could send that body, so the router
takes only the ``documentID`` from it and hands it on; the connector's
``conclude`` re-reads the document through the API and believes only that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["WEBHOOK_PATH", "webhook_router"]

WEBHOOK_PATH = "/webhooks/cloudsign"
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def webhook_router(on_document: Callable[[str], Awaitable[None]]) -> APIRouter:
    """``POST /webhooks/cloudsign``: 200 once ``on_document(documentID)`` has run."""
    router = APIRouter()

    @router.post(WEBHOOK_PATH)
    async def hook(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            document_id = body["documentID"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a CloudSign webhook"}, status_code=400)
        if not isinstance(document_id, str) or not _DOCUMENT_ID.match(document_id):
            return JSONResponse({"error": "documentID malformed"}, status_code=400)
        await on_document(document_id)
        return JSONResponse({"received": document_id})

    return router
