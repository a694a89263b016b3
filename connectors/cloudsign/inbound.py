"""CloudSign's completion webhook, received by the hub's HTTP gateway.

CloudSign POSTs ``{"documentID", "status", "userID", "email", "text"}`` when a
document is concluded (2) or rejected/withdrawn (3), with no signature header
(help.cloudsign.jp, "Webhook 機能"). So the hook is guarded otherwise:

- **A secret path token** (CSW-1): the hook URL registered in CloudSign is
  ``/webhooks/cloudsign/<HUB_CLOUDSIGN_WEBHOOK_TOKEN>``; any other token, or a
  source outside ``HUB_CLOUDSIGN_WEBHOOK_SOURCES`` when that allow-list is set,
  gets the 404 of an unknown path. The token is compared in constant time.
- **Bounded bodies** (CSW-2, CSW-3): at most ``webhook_max_bytes``, counted while
  reading; JSON nested at most ``webhook_max_depth`` deep (checked before parsing);
  a JSON object with a well-formed ``documentID`` and an integer ``status``.
  Everything else is a 4xx with a bilingual reason, never a 500.
- **Only the id and the claimed status are taken** and handed to ``on_document``;
  the hub publishes for a document it sent (``False``: not one of the hub's, 200 and
  nothing published) under one message id per (document, status)
  (:func:`notification_id`), so a repeated webhook is dropped by the idempotent
  consumer and causes no API call. The connector's ``conclude`` re-reads the document
  through the API and believes only that.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connectors.cloudsign.settings import CloudSignSettings

__all__ = ["WEBHOOK_PATH", "WEBHOOK_ROUTE", "json_depth_within", "notification_id",
           "webhook_router"]

WEBHOOK_PATH = "/webhooks/cloudsign"
"""The hook's prefix; CloudSign is given ``WEBHOOK_PATH + "/" + token``."""
WEBHOOK_ROUTE = WEBHOOK_PATH + "/{token}"
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STATUS = re.compile(r"^\d{1,2}$")


def _refusal(status: int, rule_id: str, message: tuple[str, str],
             next_step: tuple[str, str]) -> JSONResponse:
    return JSONResponse({"violations": [{
        "rule_id": rule_id, "message_ja": message[0], "message_en": message[1],
        "next_step_ja": next_step[0], "next_step_en": next_step[1]}]}, status_code=status)


def _unknown() -> JSONResponse:
    return _refusal(404, "CSW-1", ("この Webhook の URL はありません。", "No such webhook URL."),
                    ("クラウドサインに登録した Webhook URL を確認してください。",
                     "Check the webhook URL registered in CloudSign."))


def _not_a_webhook(why_en: str) -> JSONResponse:
    return _refusal(400, "CSW-3", ("クラウドサインの Webhook の形式ではありません。",
                                   f"Not a CloudSign webhook: {why_en}."),
                    ("送信元と本文の形式を確認してください。",
                     "Check the sender and the body's format."))


def notification_id(key: bytes, document_id: str, status: int) -> uuid.UUID:
    """One message id per (document, status), keyed by a secret so nobody who lacks it
    can take the id in advance: repeats of a webhook are one message."""
    digest = hmac.new(key, f"cloudsign:{document_id}:{status}".encode(), hashlib.sha256)
    return uuid.UUID(bytes=digest.digest()[:16], version=4)


def json_depth_within(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` nests arrays and objects at most ``limit`` deep
    (brackets inside strings do not count). Checked before parsing, so a deeply nested
    body never reaches the parser's recursion."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True


def _source_allowed(settings: CloudSignSettings, request: Request) -> bool:
    if not settings.webhook_sources:
        return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in settings.webhook_sources)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it passes ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, max_depth: int) -> tuple[str, int] | str:
    """``(documentID, status)`` or why the body is not a CloudSign webhook."""
    if not json_depth_within(body, max_depth):
        return "nested too deeply"
    try:
        event: Any = json.loads(body)
    except (ValueError, RecursionError):
        return "not JSON"
    if not isinstance(event, dict):
        return "not a JSON object"
    document_id, status = event.get("documentID"), event.get("status")
    if not isinstance(document_id, str) or not _DOCUMENT_ID.match(document_id):
        return "documentID missing or malformed"
    if isinstance(status, str) and _STATUS.match(status):
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 99:
        return "status missing or not a small integer"
    return document_id, status


def webhook_router(settings: CloudSignSettings,
                   on_document: Callable[[str, int], Awaitable[bool]]) -> APIRouter:
    """``POST /webhooks/cloudsign/{token}``: 200 once ``on_document(documentID, status)``
    has run (``{"received": id}``, or ``{"ignored": id}`` for a document not the hub's)."""
    router = APIRouter()
    secret = settings.webhook_token.get_secret_value().encode()

    @router.post(WEBHOOK_ROUTE)
    async def hook(token: str, request: Request) -> JSONResponse:
        if not hmac.compare_digest(token.encode(), secret) or not _source_allowed(
                settings, request):
            return _unknown()
        body = await _read_limited(request, settings.webhook_max_bytes)
        if body is None:
            return _refusal(413, "CSW-2", ("Webhook の本文が大きすぎます。",
                                           "The webhook body is too large."),
                            ("クラウドサインからの通知か確認してください。",
                             "Check that the notice comes from CloudSign."))
        parsed = _parse(body, settings.webhook_max_depth)
        if isinstance(parsed, str):
            return _not_a_webhook(parsed)
        document_id, status = parsed
        if await on_document(document_id, status):
            return JSONResponse({"received": document_id})
        return JSONResponse({"ignored": document_id})

    return router
