"""The TLS context of HTTP clients made for one call (or one case), made once per process.

httpx loads its CA bundle for every client it builds with the default ``verify=True``,
which costs more than the rest of an RFC 3161 timestamp (docs/performance.md). A client
that cannot be kept (the TSA's: pyHanko's sync API runs each signature on its own event
loop) takes this context instead; it verifies exactly as httpx's default does (certifi's
CAs, or the file in ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["default_tls_context"]


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, made on first use and shared (it is thread-safe)."""
    return httpx.create_ssl_context()
