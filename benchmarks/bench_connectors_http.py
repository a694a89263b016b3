"""Benchmark: the HTTP connectors (D・Sure, online application system, CloudSign).

For each connector, against its reference peer on loopback: requests per second
and latency (p50, p95) of
1. the bare client call: the same HTTP request with a plain ``httpx.AsyncClient``
   and ``response.json()``, nothing around it;
2. the connector call: guard (maintenance calendar, circuit breaker, deadline,
   retry policy), error classification and mapping to the canonical message;
and the latency the connector adds over the bare call (p50). Extra rows: an
application with a 認証キーのお知らせ PDF (download + PDF read, SUR-1) and a full
CloudSign send (create, upload, participant, send: four guarded calls).
The peers run in threads of this process, so client and server share the GIL:
absolute numbers are lower than across processes; the added latency is the point.

    .venv/bin/python benchmarks/bench_connectors_http.py [--count 300]

Results: benchmarks/results/connectors_http.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from reportlab.pdfgen import canvas

from connectors.application import ApplicationConnector, ApplicationSettings
from connectors.application.peer import ApplicationPeer, PeerAttachment
from connectors.cloudsign import CloudSignConnector, CloudSignSettings
from connectors.cloudsign.peer import CloudSignPeer
from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.noticepdf import render_key_notice
from connectors.dsure.peer import DSurePeer, seed_certificate
from schemas.cloudsign import ContractParticipant, ContractSendRequested
from schemas.surety import SuretyCheckRequested, SuretyKeySource

WARM_UP = 20
RESULTS = Path(__file__).parent / "results" / "connectors_http.json"
TOKEN = "bench-token"


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "req_per_s": round(len(ordered) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


async def _timed(calls: range, call: Callable[[int], Awaitable[object]]
                 ) -> tuple[list[float], float]:
    latencies, start = [], time.perf_counter()
    for i in calls:
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - start


async def run(count: int, call: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    await _timed(range(WARM_UP), call)
    return summary(*await _timed(range(count), call))


async def compare(count: int, bare: Callable[[int], Awaitable[object]],
                  full: Callable[[int], Awaitable[object]], rounds: int = 5) -> dict[str, Any]:
    """Bare and connector calls in alternating blocks, so that drift on a shared
    machine (other processes, GC) falls on both alike."""
    await _timed(range(WARM_UP), bare)
    await _timed(range(WARM_UP), full)
    samples: dict[str, list[float]] = {"bare": [], "full": []}
    walls = {"bare": 0.0, "full": 0.0}
    block = max(1, count // rounds)
    for r in range(rounds):
        for name, call in (("bare", bare), ("full", full)):
            latencies, wall = await _timed(range(r * block, (r + 1) * block), call)
            samples[name] += latencies
            walls[name] += wall
    bare_stats = summary(samples["bare"], walls["bare"])
    full_stats = summary(samples["full"], walls["full"])
    return {"bare_httpx": bare_stats, "connector": full_stats,
            "added_p50_ms": round(full_stats["p50_ms"] - bare_stats["p50_ms"], 3),
            "added_mean_ms": round(full_stats["mean_ms"] - bare_stats["mean_ms"], 3)}


def fast(settings_cls: Any, url: str, **kw: Any) -> Any:
    return settings_cls(base_url=url, timeout_s=5.0, retry_attempts=3, **kw)


async def bench_dsure(count: int) -> dict[str, Any]:
    peer = DSurePeer(token=TOKEN)
    peer.start()
    try:
        issued = peer.issue(seed_certificate())
        command = SuretyCheckRequested(contract_number=issued.certificate.contract_number,
                                       auth_key=issued.auth_key,
                                       source=SuretyKeySource.APPLICATION)
        connector = DSureConnector(fast(DSureSettings, peer.url, api_token=TOKEN))
        async with httpx.AsyncClient(base_url=peer.url) as client:
            body = {"contract_number": command.contract_number, "auth_key": command.auth_key}

            async def bare(_: int) -> object:
                response = await client.post("/api/v1/certificates/lookup", json=body,
                                             headers={"Authorization": f"Bearer {TOKEN}"})
                return response.json()

            result = await compare(count, bare, lambda _: connector.check(command))
        await connector.aclose()
        return {**result, "peer_requests": peer.faults.requests}
    finally:
        peer.stop()


async def bench_application(count: int) -> dict[str, Any]:
    peer = ApplicationPeer(token=TOKEN)
    peer.start()
    try:
        plain = peer.submit(case_no="B-1", procedure="工程表", company="〇〇建設株式会社")
        pdf = render_key_notice(contract_number="31072-0001M", auth_key="Z28YUE4J3Bux",
                                work_name="ベンチマーク工事", contractor_name="〇〇建設 株式会社",
                                product_ja="前払金保証")
        with_pdf = peer.submit(case_no="B-2", procedure="電子保証に係る認証キーのお知らせ",
                               company="〇〇建設株式会社", attachments=(PeerAttachment(
                                   "電子保証に係る認証キーのお知らせ", "key.pdf", pdf),))
        connector = ApplicationConnector(fast(ApplicationSettings, peer.url, api_token=TOKEN))
        async with httpx.AsyncClient(base_url=peer.url,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:

            async def bare(_: int) -> object:
                return (await client.get(f"/api/v1/applications/{plain}")).json()

            result = await compare(count, bare, lambda _: connector.receive(plain))
            notice_stats = await run(max(20, count // 3), lambda _: connector.receive(with_pdf))
        await connector.aclose()
        return {**result, "connector_with_key_notice_pdf": notice_stats}
    finally:
        peer.stop()


def contract_pdf() -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.drawString(60, 780, "benchmark contract")
    pdf.save()
    return buffer.getvalue()


async def bench_cloudsign(count: int, tmp: Path) -> dict[str, Any]:
    peer = CloudSignPeer(client_id=TOKEN)
    peer.start()
    try:
        connector = CloudSignConnector(fast(CloudSignSettings, peer.url, client_id=TOKEN,
                                            document_dir=tmp))
        ref = connector.store.put("契約書.pdf", contract_pdf())

        def request(_: int) -> ContractSendRequested:
            return ContractSendRequested(
                request_id=uuid.uuid4(), case_id="B-1", title="ベンチマーク契約", files=(ref,),
                participants=(ContractParticipant(name="足利 一郎",
                                                  email="ichiro@example.co.jp"),))

        sent = await connector.send(request(0))
        async with httpx.AsyncClient(base_url=peer.url) as client:
            token = (await client.post("/token", data={"client_id": TOKEN})).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}

            async def bare(_: int) -> object:
                return (await client.get(f"/documents/{sent.document_id}", headers=auth)).json()

            result = await compare(count, bare,
                                   lambda _: connector.conclude(sent.document_id, "B-1"))
            send_stats = await run(max(20, count // 3), lambda i: connector.send(request(i)))
        await connector.aclose()
        return {**result, "connector_full_send": send_stats,
                "note": "compared: GET /documents/{id} (the re-read behind each webhook)"}
    finally:
        peer.stop()


async def main(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return {
            "when": datetime.now(UTC).isoformat(),
            "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                        "note": "loopback, sequential, one client; peers in-process threads"},
            "count": count,
            "dsure": await bench_dsure(count),
            "application": await bench_application(count),
            "cloudsign": await bench_cloudsign(count, Path(tmp)),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="measured calls per mode")
    args = parser.parse_args()
    results = asyncio.run(main(max(20, min(args.count, 5000))))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(results, ensure_ascii=False, indent=2))
