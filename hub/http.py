"""The hub's HTTP side: liveness, readiness, Prometheus metrics, and the gateway.

``/healthz`` answers while the process runs; ``/readyz`` answers 200 only when
the database answers, every consumer is running and healthy, the outbox relay
runs and Kafka has acknowledged its records within ``kafka.unready_after_s``, else 503
with the failing checks; ``/metrics`` is Prometheus' text format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["build_http_app"]

ReadinessCheck = Callable[[], Awaitable[dict[str, Any]]]


def build_http_app(readiness: ReadinessCheck, *, title: str = "Procurement hub") -> FastAPI:
    app = FastAPI(title=title, version="0.1.0",
                  description="Health, metrics and the card-agent gateway of the hub.")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(v.get("ok") for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
