"""Inbound side of the online application system: the signed webhook and the poller.

The webhook only announces a submission (``application_id``); the connector then
reads the application through the API, so the webhook body is never trusted for
content. Its signature is still checked (HMAC-SHA256 over ``"<timestamp>.<body>"``,
timestamp within ``webhook_tolerance_s`` against replays) so that nobody can make
the hub fetch at will. :func:`webhook_router` is mounted by the hub's HTTP gateway;
:func:`poll_forever` is the safety net for lost webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connectors._shared import ConnectorError
from connectors.application.connector import ApplicationConnector
from connectors.application.settings import ApplicationSettings

__all__ = ["WEBHOOK_PATH", "poll_forever", "verify_signature", "webhook_router"]

WEBHOOK_PATH = "/webhooks/online-application"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
log = logging.getLogger(__name__)


def verify_signature(secret: str, timestamp: str, signature: str, body: bytes, *,
                     now: float, tolerance_s: int) -> bool:
    # ASCII digits, at most 12: int() refuses "²" (which isdigit() accepts) and numbers
    # of more than 4,300 digits.
    if _TIMESTAMP.fullmatch(timestamp) is None or abs(now - int(timestamp)) > tolerance_s:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def webhook_router(settings: ApplicationSettings,
                   on_submitted: Callable[[str], Awaitable[None]],
                   clock: Callable[[], float] = time.time) -> APIRouter:
    """``POST /webhooks/online-application``: 202 once ``on_submitted(id)`` has run."""
    router = APIRouter()

    @router.post(WEBHOOK_PATH)
    async def submitted(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_signature(settings.webhook_secret.get_secret_value(),
                                request.headers.get("x-signature-timestamp", ""),
                                request.headers.get("x-signature", ""), body,
                                now=clock(), tolerance_s=settings.webhook_tolerance_s):
            return JSONResponse({"error": "bad signature or stale timestamp"}, status_code=401)
        try:
            event = json.loads(body)
            application_id = event["application_id"]
            kind = event["event"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not an application event"}, status_code=400)
        if kind != "application.submitted" or not isinstance(application_id, str):
            return JSONResponse({"error": f"unsupported event {kind!r}"}, status_code=400)
        await on_submitted(application_id)
        return JSONResponse({"accepted": application_id}, status_code=202)

    return router


async def poll_forever(connector: ApplicationConnector, cursor: str,
                       sink: Callable[[list[str], str], Awaitable[None]], *,
                       interval_s: float, stop: asyncio.Event) -> str:
    """Poll until ``stop`` is set; ``sink(ids, next_cursor)`` publishes the ids (as
    ``ApplicationSubmitted``) and stores the cursor, in that order.

    A failed poll is logged and tried again next interval with the same cursor:
    nothing is skipped. A full page is followed at once by the next. Returns the
    last cursor.
    """
    while not stop.is_set():
        try:
            ids, next_cursor = await connector.announced_after(cursor)
        except ConnectorError as exc:
            log.warning("application poll failed: %s", exc.reason)
        else:
            if ids:
                await sink(ids, next_cursor)
            cursor = next_cursor
            if len(ids) >= connector.settings.poll_limit:
                continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return cursor
