"""The hub's side of the card-agent benchmark, in its own process as on a real hub.

    python -m benchmarks._gateway_server DATABASE_URL PORT

uvicorn serves the hub's HTTP app (``build_http_app``: the edge's limits and clean
errors, keep-alive as ``hub run``) with the gateway router on the test PKI's roots. A
thread plays the registration pipeline for the benchmark's one 利用者登録 (the handlers
of tests/card/hubside.py on the outbox's command), then stops.

``GET /_bench/stages`` gives the seconds each gateway request took inside this process
(from its first byte in to its last byte out) and those of the signature validation, by
name, so the benchmark can tell the hub's part from the wire's and the agent's.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import wraps
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

import hub.gateway.jobs as gateway_jobs  # noqa: E402
from hub.db import create_db_engine  # noqa: E402
from hub.gateway.config import GatewayConfig  # noqa: E402
from hub.gateway.routes import build_router  # noqa: E402
from hub.http import build_http_app  # noqa: E402
from hub.http_edge import EdgeLimits  # noqa: E402
from hub.runtime import HTTP_KEEP_ALIVE_S  # noqa: E402
from tests.card.hubside import drive  # noqa: E402
from tests.card.pki import shared_pki  # noqa: E402

STAGES: dict[str, list[float]] = {}
_LOCK = threading.Lock()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _note(name: str, seconds: float) -> None:
    with _LOCK:
        STAGES.setdefault(name, []).append(seconds)


def _stage_of(method: str, path: str) -> str | None:
    if not path.startswith("/gateway/jobs/"):
        return None
    if method == "PUT" and path.endswith("/signed"):
        return "hub: PUT signed (validation, store)"
    if method == "GET":
        return "hub: GET document" if path.endswith("/document") else "hub: GET job"
    return None


def timed(app: App) -> App:
    """ASGI middleware: the time of each job request inside this process."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        stage = _stage_of(scope.get("method", ""), scope.get("path", "")) \
            if scope["type"] == "http" else None
        if stage is None:
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def sending(message: MutableMapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                _note(stage, time.perf_counter() - started)

        await app(scope, receive, sending)

    return middleware


def _timed_validation() -> None:
    validate = gateway_jobs.validate_signed_pdf

    @wraps(validate)
    def timed_validate(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return validate(*args, **kwargs)
        finally:
            _note("hub: pyHanko validation", time.perf_counter() - started)

    gateway_jobs.validate_signed_pdf = timed_validate  # type: ignore[assignment]


def main() -> None:
    url, port = sys.argv[1], int(sys.argv[2])
    pki = shared_pki()
    engine = create_db_engine(url)
    cfg = GatewayConfig(engine=engine, card_roots=pki.trust_roots,
                        signature_roots=pki.trust_roots)

    async def ready() -> dict[str, Any]:
        return {}

    app = build_http_app(ready, limits=EdgeLimits())
    app.include_router(build_router(cfg))

    @app.get("/_bench/stages", include_in_schema=False)
    async def stages() -> JSONResponse:
        with _LOCK:
            return JSONResponse({k: list(v) for k, v in STAGES.items()})

    _timed_validation()
    stop = threading.Event()

    def registration_pipeline() -> None:
        done: set[int] = set()
        while not done and not stop.wait(0.05):
            drive(engine, cfg.now(), done)

    threading.Thread(target=registration_pipeline, daemon=True).start()
    try:
        uvicorn.run(timed(app), host="127.0.0.1", port=port, log_level="warning",
                    lifespan="off", timeout_keep_alive=HTTP_KEEP_ALIVE_S)
    finally:
        stop.set()
        engine.dispose()


if __name__ == "__main__":
    main()
