"""Limits and clean errors on every HTTP edge of the hub (EDGE-1 … EDGE-3).

- **EDGE-1, body size per route, checked while reading.** A declared ``Content-Length``
  over the route's limit is answered 413 before one byte of the body is read; a body
  without one (chunked) is counted as the application reads it and refused with 413 as
  soon as it passes the limit. So an unauthenticated caller can make the hub hold at most
  one route's limit per request, never its whole body.
- **EDGE-2, rate limits per client on the unauthenticated routes** (login challenges,
  review links, webhooks): a token bucket per client address and route group, refused
  with 429 and ``Retry-After``. The buckets live in the process: a deployment of N hub
  processes behind a balancer allows N times the rate (docs/security.md).
- **EDGE-3, malformed input is a 4xx, never a 500:** a body that does not validate,
  nests too deeply, or is not text answers 400/422 with a short Japanese and English
  message naming the field, never the input; an unexpected error answers 500 with the
  same kind of message and no trace (the trace goes to the hub's log only).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.rejection import RuleViolation

__all__ = ["BodyTooLargeError", "EdgeLimits", "EdgeMiddleware", "RateLimiter", "install_edge"]

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class EdgeLimits:
    """Body limits (bytes) and the unauthenticated routes' rate (per client address)."""

    default_body: int = 256 * KIB
    document_body: int = 32 * MIB
    """The PDFs: a contract set uploaded by the staff, a signed PDF from the card agent."""
    webhook_body: int = 64 * KIB
    rate_per_minute: float = 120.0
    rate_burst: int = 30
    document_routes: tuple[tuple[str, re.Pattern[str]], ...] = (
        ("PUT", re.compile(r"^/gateway/jobs/[^/]+/signed$")),
        ("POST", re.compile(r"^/contracts/[^/]+/contract-set$")),
    )
    rate_groups: tuple[tuple[str, re.Pattern[str]], ...] = (
        ("challenge", re.compile(r"^/gateway/(challenges|sessions)$")),
        ("review", re.compile(r"^/contract/review(/|$)")),
        ("webhook", re.compile(r"^/webhooks/")),
    )

    def body_limit(self, method: str, path: str) -> int:
        if path.startswith("/webhooks/"):
            return self.webhook_body
        if any(m == method and p.match(path) for m, p in self.document_routes):
            return self.document_body
        return self.default_body

    def rate_group(self, path: str) -> str | None:
        return next((name for name, p in self.rate_groups if p.match(path)), None)


def _violation(rule: str, ja: str, en: str, next_ja: str, next_en: str, *,
               fld: str | None = None) -> dict[str, Any]:
    return RuleViolation(rule_id=rule, message_ja=ja, message_en=en, next_step_ja=next_ja,
                         next_step_en=next_en, field=fld).model_dump()


def _body(*violations: dict[str, Any]) -> dict[str, Any]:
    return {"detail": {"violations": list(violations)}}


def too_large(limit: int) -> dict[str, Any]:
    return _body(_violation(
        "EDGE-1", f"送信されたデータが大きすぎます（上限 {limit:,} バイト）。",
        f"The request body is too large (at most {limit:,} bytes).",
        "データを小さくして送り直してください。", "Send a smaller body."))


def too_many(retry_after: int) -> dict[str, Any]:
    return _body(_violation(
        "EDGE-2", "短時間の要求が多すぎます。", "Too many requests in a short time.",
        f"{retry_after}秒以上待ってからやり直してください。",
        f"Wait {retry_after} s or more, then try again."))


@dataclass
class RateLimiter:
    """Token buckets per key: ``rate`` tokens a second up to ``burst``."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 50_000
    _buckets: dict[Any, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: Any) -> float:
        """0 when the request may pass, else the seconds until a token is there."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they mean nothing any more)."""
        full = [k for k, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


class BodyTooLargeError(HTTPException):
    """Raised while reading: an HTTPException, so that frameworks reading the body
    pass it on as the 413 it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=too_large(limit)["detail"],
                         headers={"connection": "close"})
        self.limit = limit


class EdgeMiddleware:
    """EDGE-1 and EDGE-2 in front of the whole application (pure ASGI: the body is
    counted as it streams, never buffered here)."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limits = limits
        self.rates = RateLimiter(limits.rate_per_minute / 60.0, limits.rate_burst, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        group = self.limits.rate_group(path)
        if group is not None:
            client = scope.get("client")
            wait = self.rates.take((group, client[0] if client else "?"))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await _answer(send, 429, too_many(retry), {"retry-after": str(retry)})
                return
        limit = self.limits.body_limit(scope.get("method", "GET"), path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, too_large(limit), {"connection": "close"})
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLargeError:
            if started:
                raise
            await _answer(send, 413, too_large(limit), {"connection": "close"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
    return None


async def _answer(send: Send, status: int, body: dict[str, Any],
                  headers: dict[str, str]) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
        *((k.encode(), v.encode()) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": raw})


def _invalid(exc: RequestValidationError) -> dict[str, Any]:
    found = []
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "(body)"
        # The field and pydantic's kind of error: never the input, which may be huge,
        # binary, or crafted to be echoed into a log or a page.
        kind = str(err.get("type", "invalid"))[:60]
        found.append(_violation(
            "EDGE-3", f"入力項目「{where[:100]}」が正しくありません（{kind}）。",
            f"The field {where[:100]!r} is not valid ({kind}).",
            "入力内容（形式・文字数）を確認し、修正して送り直してください。",
            "Check its format and length, correct it and send again.", fld=where[:100]))
    return _body(*found)


def _malformed() -> dict[str, Any]:
    return _body(_violation(
        "EDGE-3",
        "送信されたデータを読み取れません（形式、文字コード、または入れ子が深すぎます）。",
        "The request body cannot be read (its format or encoding, or it nests too deeply).",
        "正しい形式（UTF-8 の JSON など）で送り直してください。",
        "Send it again in the expected format (e.g. JSON in UTF-8)."))


def _internal() -> dict[str, Any]:
    return _body(_violation(
        "EDGE-3", "ハブ内部で処理できませんでした。", "The hub could not process the request.",
        "しばらくしてからやり直してください。続く場合はハブの管理者に連絡してください。",
        "Try again later; if it persists, tell the hub's administrator."))


_JA_BY_STATUS = {
    400: "送信されたデータを読み取れません。",
    401: "認証が必要です。",
    403: "この操作は許可されていません。",
    404: "指定された URL はありません。",
    405: "この URL ではその操作はできません。",
    406: "応答の形式が受け付けられません。",
    415: "送信されたデータの形式には対応していません。",
    422: "送信された内容が正しくありません。",
}


def _plain(status: int, text: str) -> dict[str, Any]:
    """A framework's plain-text refusal (``"Not Found"``, ``"There was an error parsing the
    body"``: its own words, never the input) as a bilingual violation."""
    return _body(_violation(
        "EDGE-3", _JA_BY_STATUS.get(status, f"要求を処理できません（HTTP {status}）。"),
        text[:200] or f"HTTP {status}",
        "URL と送信内容を確認してください。", "Check the URL and what was sent."))


REFUSAL_SCHEMA: dict[str, Any] = {
    "title": "Refusal", "type": "object", "required": ["detail"],
    "properties": {"detail": {"type": "object", "required": ["violations"], "properties": {
        "violations": {"type": "array", "items": RuleViolation.model_json_schema()}}}},
}
"""What every refusal of the hub looks like: ``{"detail": {"violations": [...]}}``."""


def _documented(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with FastAPI's 422 body replaced by the hub's refusal (EDGE-3)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = REFUSAL_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install_edge(app: FastAPI, limits: EdgeLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """EDGE-1, EDGE-2 (middleware) and EDGE-3 (exception handlers) on ``app``."""
    app.openapi = _documented(app)  # type: ignore[method-assign]

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(_invalid(exc), status_code=422)

    async def malformed(request: Request, exc: Exception) -> JSONResponse:
        log.info("malformed request to %s: %s", request.url.path, type(exc).__name__)
        return JSONResponse(_malformed(), status_code=400)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("request to %s failed", request.url.path, exc_info=exc)
        return JSONResponse(_internal(), status_code=500)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.detail, str):
            return JSONResponse(_plain(exc.status_code, exc.detail), status_code=exc.status_code,
                                headers=exc.headers)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    for kind in (RecursionError, UnicodeError):
        app.add_exception_handler(kind, malformed)
    app.add_exception_handler(Exception, internal)
    app.add_middleware(EdgeMiddleware, limits=limits or EdgeLimits(), clock=clock)
