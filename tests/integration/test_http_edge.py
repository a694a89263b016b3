"""The hub's HTTP edge (hub/http_edge.py) with its real routers, on the hub's own server
(uvicorn) on loopback where the wire matters.

- EDGE-1: a 40 MB unsigned webhook is refused with 413 before its body is read: over a
  socket, the answer comes while the client has sent almost none of it; in process, the
  application pulls no more than the route's limit of a chunked body.
- EDGE-2: the unauthenticated routes answer 429 with Retry-After once a client's bucket
  is empty, whatever X-Forwarded-For it claims; another client is not affected.
- EDGE-3: the inputs that gave 500 with a traceback (a timestamp of "²", 5,000 digits,
  deeply nested JSON, wrong content types, undecodable bytes) get a 4xx with a short
  bilingual message that echoes nothing of the input.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from connectors.application.inbound import verify_signature
from connectors.application.inbound import webhook_router as application_hook
from connectors.application.settings import ApplicationSettings
from connectors.cloudsign.inbound import webhook_router as cloudsign_hook
from connectors.cloudsign.settings import CloudSignSettings
from hub.contract.review_api import review_router
from hub.db import create_db_engine
from hub.gateway import GatewayConfig, build_router
from hub.http import build_http_app
from hub.http_edge import EdgeLimits
from hub.migrations import upgrade
from hub.runtime import edge_limits
from hub.settings import HttpSettings
from tests.support.httpserve import Served

SECRET = "edge-test-webhook-secret-0123456789"
CLOUDSIGN_TOKEN = "edge-test-cloudsign-webhook-token-0123456789"
CLOUDSIGN_HOOK = f"/webhooks/cloudsign/{CLOUDSIGN_TOKEN}"
MARKER = "ATTACKER-MARKER-7f3a"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def hub_app(engine: Engine, limits: EdgeLimits | None = None,
            clock: Any = None) -> tuple[FastAPI, list[str]]:
    """The hub's app with its webhooks, gateway and review routers; the ids the webhooks
    handed on."""
    async def ready() -> dict[str, Any]:
        return {}

    handed: list[str] = []

    async def on_id(found: str) -> None:
        handed.append(found)

    async def on_document(found: str, status: int) -> bool:
        handed.append(found)
        return True

    app = build_http_app(ready, limits=limits, rate_clock=clock or time.monotonic)
    app.include_router(application_hook(ApplicationSettings(
        webhook_secret=SecretStr(SECRET)), on_id, clock=time.time))
    app.include_router(cloudsign_hook(CloudSignSettings(
        webhook_token=SecretStr(CLOUDSIGN_TOKEN)), on_document))
    app.include_router(build_router(GatewayConfig(engine=engine, card_roots=(),
                                                  signature_roots=())))
    app.include_router(review_router(engine))
    return app, handed


def _signed(body: bytes, timestamp: str) -> dict[str, Any]:
    """The webhook's signature headers; the timestamp as the server will decode it
    (latin-1, as HTTP header bytes are: "²" arrives as "²")."""
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    try:
        raw = timestamp.encode("latin-1")
    except UnicodeEncodeError:
        raw = timestamp.encode()
    return {"x-signature-timestamp": raw, "x-signature": f"sha256={mac.hexdigest()}",
            "content-type": "application/json"}


# -- EDGE-1: bodies ---------------------------------------------------------------------

def test_a_40_mb_unsigned_webhook_is_refused_before_its_body_is_read(engine: Engine) -> None:
    app, handed = hub_app(engine)
    size = 40 * 1024 * 1024
    with Served(app) as served, socket.create_connection(("127.0.0.1", served.port),
                                                         timeout=10) as sock:
        sock.sendall(b"POST /webhooks/online-application HTTP/1.1\r\nHost: hub\r\n"
                     b"Content-Type: application/json\r\nX-Signature: sha256=00\r\n"
                     b"X-Signature-Timestamp: 1\r\n"
                     + f"Content-Length: {size}\r\n\r\n".encode() + b"{" + b" " * 65_535)
        answer = b""
        while b"\r\n\r\n" not in answer:  # the answer, with 64 KiB of the 40 MB sent
            chunk = sock.recv(65_536)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert b"EDGE-1" in answer or b"connection: close" in answer.lower()
    assert handed == []


async def _pulled_by(app: FastAPI, path: str, size: int, chunk: int = 65_536,
                     method: str = "POST") -> tuple[int, int]:
    """Send a chunked ``size``-byte body to ``path`` in process: (status, bytes pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= size:
            return {"type": "http.disconnect"}
        part = min(chunk, size - pulled)
        pulled += part
        return {"type": "http.request", "body": b" " * part, "more_body": pulled < size}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.9", 5000),
             "server": ("127.0.0.1", 8480),
             "headers": [(b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")]}
    await app(scope, receive, send)
    return status, pulled


async def test_a_chunked_body_is_read_no_further_than_the_route_limit(engine: Engine) -> None:
    app, handed = hub_app(engine)
    limits = EdgeLimits()
    size = 40 * 1024 * 1024
    for path, limit in (("/webhooks/online-application", limits.webhook_body),
                        (CLOUDSIGN_HOOK, limits.webhook_body),
                        ("/gateway/sessions", limits.default_body),
                        ("/contract/review/x/code", limits.default_body)):
        status, pulled = await _pulled_by(app, path, size)
        assert status == 413, path
        assert pulled <= limit + 65_536, (path, pulled)
    # a signed PDF may be up to 32 MiB, but without a session none of it is read
    status, pulled = await _pulled_by(app, "/gateway/jobs/j1/signed", 2 * 1024 * 1024,
                                      method="PUT")
    assert (status, pulled) == (401, 0)
    assert handed == []


def test_body_limits_come_from_the_settings() -> None:
    limits = edge_limits(HttpSettings(max_body_bytes=2048, max_document_bytes=4096,
                                      max_webhook_bytes=1024, rate_per_minute=6,
                                      rate_burst=2))
    assert limits.body_limit("POST", CLOUDSIGN_HOOK) == 1024
    assert limits.body_limit("PUT", "/gateway/jobs/abc/signed") == 4096
    assert limits.body_limit("POST", "/contracts/R8-1/contract-set") == 4096
    assert limits.body_limit("POST", "/gateway/registrations") == 2048
    assert (limits.rate_per_minute, limits.rate_burst) == (6, 2)


# -- EDGE-2: rates ----------------------------------------------------------------------

def test_unauthenticated_routes_answer_429_with_retry_after_per_client(engine: Engine) -> None:
    clock = FakeClock()
    app, _ = hub_app(engine, EdgeLimits(rate_per_minute=60, rate_burst=3), clock)
    with TestClient(app, client=("192.0.2.1", 4000)) as one, \
            TestClient(app, client=("192.0.2.2", 4000)) as other:
        for path in ("/gateway/challenges", CLOUDSIGN_HOOK, "/contract/review/x"):
            answers = [one.post(path) if "review" not in path else one.get(path)
                       for _ in range(4)]
            assert [a.status_code == 429 for a in answers] == [False, False, False, True]
            limited = answers[-1]
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.json()["detail"]["violations"][0]["rule_id"] == "EDGE-2"
        assert other.post("/gateway/challenges").status_code == 200  # its own bucket
        assert one.get("/healthz").status_code == 200  # operations are not limited
        clock.now += 1.0  # one token a second
        assert one.post("/gateway/challenges").status_code == 200
        assert one.post("/gateway/challenges").status_code == 429


def test_x_forwarded_for_does_not_buy_a_new_bucket(engine: Engine) -> None:
    import httpx

    app, _ = hub_app(engine, EdgeLimits(rate_per_minute=1, rate_burst=2))
    with Served(app) as served, httpx.Client(base_url=f"http://127.0.0.1:{served.port}") as http:
        codes = [http.post("/gateway/challenges",
                           headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                 for i in range(4)]
    assert codes == [200, 200, 429, 429]


# -- EDGE-3: clean errors ---------------------------------------------------------------

def _clean(answer: Any) -> dict[str, Any]:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text
    assert MARKER not in answer.text
    return dict(answer.json())


def test_malformed_inputs_get_a_4xx_that_echoes_nothing(engine: Engine) -> None:
    app, handed = hub_app(engine)
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    with TestClient(app, raise_server_exceptions=False) as http:
        now = str(int(time.time()))
        body = json.dumps({"event": "application.submitted", "application_id": MARKER}).encode()
        for timestamp in ("²", "9" * 5000, "١٢٣", "-1", f"{now}.5"):
            _clean(http.post("/webhooks/online-application", content=body,
                             headers=_signed(body, timestamp)))
        signed = _signed(deep[:60_000], now)
        _clean(http.post("/webhooks/online-application", content=deep[:60_000],
                         headers=signed))
        _clean(http.post(CLOUDSIGN_HOOK, content=deep[:60_000],
                         headers={"content-type": "application/json"}))
        _clean(http.post(CLOUDSIGN_HOOK, content=b'{"documentID": ' + b"9" * 5000
                         + b"}", headers={"content-type": "application/json"}))
        _clean(http.post(CLOUDSIGN_HOOK, content=b"\xff\xfe" + MARKER.encode()))
        for content, kind in ((deep[:60_000], "application/json"),
                              (b'{"challenge_id": ' + b"9" * 5000 + b"}", "application/json"),
                              (MARKER.encode(), "text/plain"),
                              (b"\xff\xfe\xfd", "application/json"),
                              (json.dumps({"challenge_id": MARKER * 10, "certificate": "x",
                                           "signature": "y"}).encode(), "application/json")):
            found = _clean(http.post("/gateway/sessions", content=content,
                                     headers={"content-type": kind}))
            assert found["detail"]["violations"][0]["message_ja"]
        review = _clean(http.post("/contract/review/x/code", json={"by": f"<{MARKER}>"}))
        (v,) = review["detail"]["violations"]
        assert (v["rule_id"], v["field"]) == ("EDGE-3", "by")
        assert "正しくありません" in v["message_ja"]
        assert "not valid" in v["message_en"]
        _clean(http.post("/contract/review/x/agree", content=deep[:60_000],
                         headers={"content-type": "application/json"}))
    assert handed == []


def test_an_unexpected_error_is_a_short_500_without_the_trace(engine: Engine) -> None:
    app, _ = hub_app(engine)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(MARKER)

    with TestClient(app, raise_server_exceptions=False) as http:
        answer = http.get("/boom")
    assert answer.status_code == 500
    assert MARKER not in answer.text
    assert "Traceback" not in answer.text
    assert answer.json()["detail"]["violations"][0]["rule_id"] == "EDGE-3"



def test_webhook_timestamps_are_ascii_digits_and_few() -> None:
    # "²" passes str.isdigit() but not int(); 5,000 digits pass neither int() nor sense
    for timestamp in ("²", "9" * 5000, "١٢٣", "", " 1", "1e9"):
        assert verify_signature(SECRET, timestamp, "sha256=00", b"{}", now=time.time(),
                                tolerance_s=300) is False
    now = str(int(time.time()))
    assert verify_signature(SECRET, now, _signed(b"{}", now)["x-signature"], b"{}",
                            now=time.time(), tolerance_s=300) is True
