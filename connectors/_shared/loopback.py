"""Serve an ASGI app (a reference peer or a webhook receiver) on a loopback port,
and make a reference peer misbehave on purpose (down, slow, garbage, maintenance).

The reference peers of the HTTP connectors (D・Sure, online application system,
CloudSign) are real HTTP servers: uvicorn on 127.0.0.1, on a free port, in a
thread of their own, so a test or a benchmark reaches them through the real
network stack. Implements :class:`connectors._shared.ReferencePeer`. Needs the ``peers`` extra
(uvicorn, FastAPI): import it from peers and tests, never from production modules.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

__all__ = ["LoopbackServer", "PeerFaults", "free_port", "install_faults", "serve_forever"]


@dataclass
class PeerFaults:
    """What a reference peer does wrong right now; tests and benchmarks set it.

    ``requests`` counts every API call that reached the peer (health and the
    ``/_peer`` control paths excluded), so a test can see the connector's retries.
    """

    slow_s: float = 0.0
    garbage: bool = False
    error_status: int | None = None
    maintenance_until: datetime | None = None
    requests: int = 0

    def clear(self) -> None:
        self.slow_s, self.garbage, self.error_status = 0.0, False, None
        self.maintenance_until = None


def install_faults(app: FastAPI, faults: PeerFaults) -> None:
    """Apply ``faults`` to every request of ``app`` except ``/health``."""

    @app.middleware("http")
    async def _faults(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.endswith("/health"):
            return await call_next(request)
        faults.requests += 1
        until = faults.maintenance_until
        if until is not None and datetime.now(UTC) < until:
            wait = max(1, int((until - datetime.now(UTC)).total_seconds()))
            return JSONResponse({"error": "maintenance", "until": until.isoformat()},
                                status_code=503, headers={"Retry-After": str(wait)})
        if faults.slow_s:
            await asyncio.sleep(faults.slow_s)
        if faults.garbage:
            return Response(b"<html><body>502 Bad Gateway</body></html>\x00\xff",
                            media_type="application/json")
        if faults.error_status is not None:
            return JSONResponse({"error": "internal"}, status_code=faults.error_status)
        return await call_next(request)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LoopbackServer:
    """uvicorn serving ``app`` in a daemon thread; ``start`` returns once it accepts."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout_s: float = 10.0) -> None:
        self._host = host
        self._port = port or free_port(host)
        self._timeout = startup_timeout_s
        self._config = uvicorn.Config(app, host=host, port=self._port, log_level="warning",
                                      access_log=False, lifespan="off")
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._thread is not None:
            return
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, name=f"peer:{self._port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=self._timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_forever(peer: Any) -> None:
    """Run a reference peer (``start``/``stop``/``url``) in the foreground until Ctrl-C:
    the local default, ``python -m connectors.<name>.peer``."""
    peer.start()
    print(f"{type(peer).__name__} on {peer.url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        peer.stop()
