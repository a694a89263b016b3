"""The hub's HTTP side: liveness, readiness, Prometheus metrics, and the gateway.

``/healthz`` answers 200 while the process and all its supervised background tasks run,
503 with the tasks that are down (they are being restarted); ``/readyz`` answers 200 only when
the database answers, every consumer is running and healthy and the outbox relay
runs, else 503 with the failing checks; it also shows each connector's health (``connectors``:
state, detail, circuit, counters), which does not gate readiness: a peer that is down holds
its work, nothing is lost. ``/metrics`` is Prometheus' text format. Every route sits behind
the edge's limits and clean errors (:mod:`hub.http_edge`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.http_edge import EdgeLimits, install_edge

__all__ = ["build_http_app"]

ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]
LivenessCheck = Callable[[], dict[str, str]]
"""The background tasks that are down, with why (empty: all run)."""


ConnectorHealth = Callable[[], Awaitable[dict[str, dict[str, Any]]]]
"""Each connector's health (hub/connector_watch.py): shown, not gating readiness."""


def build_http_app(readiness: ReadinessCheck, *, liveness: LivenessCheck | None = None,
                   connectors: ConnectorHealth | None = None,
                   title: str = "Procurement hub", limits: EdgeLimits | None = None,
                   rate_clock: Callable[[], float] = time.monotonic) -> FastAPI:
    app = FastAPI(title=title, version="0.1.0",
                  description="Health, metrics and the card-agent gateway of the hub.")
    install_edge(app, limits, rate_clock)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        down = liveness() if liveness is not None else {}
        if down:
            return JSONResponse({"status": "down", "down": down}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(v.get("ok") for v in checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if connectors is not None:
            body["connectors"] = await connectors()
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
