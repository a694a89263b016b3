"""The contractor's web pages without a staff login: the review page (CON-3) and the
download page (CON-4). Server-rendered (Jinja2, ``templates/``), Japanese first with the
English under it (``lang="en"``), no script.

- :func:`render`: a page with the headers every one of them carries: no caching (a page
  holds the link's capability), no referrer, no framing, and a content security policy
  that allows no script at all.
- CSRF (rule EDGE-4): a page's forms carry ``csrf``, an HMAC keyed with a random cookie
  (``review_csrf``: HttpOnly, SameSite=Lax, Secure under https) over the review token's
  hash. Another site can neither read the cookie nor compute the field, and a
  cross-site POST does not carry a Lax cookie. JSON clients send no cookie and need
  none: a cross-site page cannot send a JSON body without CORS, which the hub never
  allows.
- :class:`PagePreview`: the contract set's pages as PNG images for the page, drawn by
  poppler's ``pdftoppm`` in a child process under CPU, memory and time limits (``prlimit``) (never
  the hub's own process: the PDF is the city's upload), at most two at once, the last
  few kept in memory by the document's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import subprocess
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from schemas.rejection import RuleViolation

__all__ = [
    "CSRF_COOKIE",
    "PagePreview",
    "csrf_field",
    "csrf_refusal",
    "csrf_valid",
    "render",
    "wants_html",
]

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(("j2", "html")))

CSRF_COOKIE = "review_csrf"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                "object-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
}


def wants_html(request: Request) -> bool:
    """A browser asking for a page (``Accept`` names HTML, not JSON)."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def render(name: str, status_code: int = 200, *, cookie: tuple[str, bool] | None = None,
           **context: Any) -> HTMLResponse:
    """Template ``name`` as a page; ``cookie``: the CSRF cookie to set (value, secure)."""
    context.setdefault("city_name", None)
    page = HTMLResponse(_TEMPLATES.get_template(name).render(**context), status_code=status_code,
                        headers=_HEADERS)
    if cookie is not None:
        value, secure = cookie
        page.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="lax", secure=secure,
                        path="/contract/review")
    return page


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one; and whether to mark it Secure."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) < 32:
        value = secrets.token_urlsafe(32)
    return value, request.url.scheme == "https"


def csrf_field(cookie: str, token: str) -> str:
    """The forms' ``csrf`` value for review ``token`` under ``cookie``."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return hmac.new(cookie.encode(), f"review:{digest}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(request: Request, token: str, field: str) -> bool:
    """The form came from the hub's own page for this link, in this browser."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if len(cookie) < 32 or request.headers.get("sec-fetch-site") == "cross-site":
        return False
    return hmac.compare_digest(csrf_field(cookie, token), field)


def csrf_refusal() -> RuleViolation:
    return RuleViolation(
        rule_id="EDGE-4", field="csrf",
        message_ja="このフォームは受け付けられません（確認ページから送信されていないか、"
                   "ページが古くなっています）。",
        message_en="This form was not accepted: it was not sent from the review page, or "
                   "the page is out of date.",
        next_step_ja="確認依頼メールのリンクから確認ページを開き直し、もう一度操作してください。"
                     "ブラウザーのCookieを有効にしてください。",
        next_step_en="Open the review page again from the link in the review mail and repeat "
                     "the step; cookies must be enabled.")


class PagePreview:
    """PNG images of a PDF's pages (``pdftoppm``), for the review page."""

    MAX_PAGES = 20
    WIDTH = 900
    CPU_S = 10
    MEMORY_MB = 512
    TIMEOUT_S = 30.0

    def __init__(self, cache_size: int = 64) -> None:
        self._gate = threading.BoundedSemaphore(2)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._prlimit = shutil.which("prlimit") or "prlimit"
        self.available = all(shutil.which(tool) for tool in ("pdftoppm", "pdfinfo", "prlimit"))

    def _run(self, argv: list[str], pdf: bytes) -> bytes | None:
        # util-linux's prlimit sets the child's limits (no preexec_fn: the hub has threads)
        limits = [self._prlimit, f"--cpu={self.CPU_S}",
                  f"--as={self.MEMORY_MB * 1024 * 1024}", "--"]
        with self._gate:
            try:
                done = subprocess.run([*limits, *argv], input=pdf, capture_output=True,  # noqa: S603
                                      check=False, timeout=self.TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                return None
        return done.stdout if done.returncode == 0 and done.stdout else None

    def page_count(self, sha256: str, pdf: bytes) -> int | None:
        """How many pages ``pdf`` has; None when poppler is missing or cannot read it."""
        with self._lock:
            if sha256 in self._counts:
                self._counts.move_to_end(sha256)
                return self._counts[sha256]
        if not self.available:
            return None
        out = self._run(["pdfinfo", "-"], pdf)
        if out is None:
            return None
        count = next((int(line.split(b":")[1]) for line in out.splitlines()
                      if line.startswith(b"Pages:")), None)
        if count is not None:
            with self._lock:
                self._counts[sha256] = count
                while len(self._counts) > self._cache_size:
                    self._counts.popitem(last=False)
        return count

    def png(self, sha256: str, pdf: bytes, page: int) -> bytes | None:
        """Page ``page`` (from 1) as a PNG, ``WIDTH`` pixels wide; None if it cannot be drawn."""
        key = (sha256, page)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if not self.available or not 1 <= page <= self.MAX_PAGES:
            return None
        out = self._run(["pdftoppm", "-png", "-f", str(page), "-l", str(page), "-singlefile",
                         "-scale-to-x", str(self.WIDTH), "-scale-to-y", "-1", "-"], pdf)
        if out is None or not out.startswith(b"\x89PNG"):
            return None
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out
