"""Benchmark: mail (SMTP) and ERP (SOAP) connectors against their reference peers.

For each connector: requests per second and latency (p50, p95) of
1. the bare client call, synchronous, nothing around it: for mail, rendering the
   same notice and sending it with smtplib; for the ERP, the zeep service call,
2. the full connector call (rendering or mapping, worker thread, retry policy,
   circuit breaker, maintenance calendar, deadline),
and the latency the connector adds over the bare call. Also the guard alone
around a no-op coroutine. Loopback only, bounded in count.

    .venv/bin/python benchmarks/bench_connectors_mail_erp.py [--count 200]

Results: benchmarks/results/connectors_mail_erp.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import smtplib
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from connectors._shared import CircuitBreaker, Guard, MaintenanceCalendar, RetryPolicy
from connectors.erp import ErpConnector, ErpSettings
from connectors.erp.mapping import to_soap
from connectors.erp.peer import ErpPeer
from connectors.mail import DirectoryDocumentStore, MailConnector, MailSettings
from connectors.mail.mapping import Sender, build_message
from connectors.mail.peer import SmtpPeer
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.mail import MailKind, MailRequested

WARM_UP = 20
"""Calls per mode before measuring (connections, caches, thread pool)."""
RESULTS = Path(__file__).parent / "results" / "connectors_mail_erp.json"
VALUES = {"system_name": "埼玉県電子入札共同システム", "procuring_entity_name": "埼玉県",
          "company_name": "○○建設株式会社", "contact_name": "埼玉 太郎",
          "contact_address": "埼玉県さいたま市○○1丁目23番地"}


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "req_per_s": round(len(ordered) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def run_sync(count: int, call: Callable[[int], object]) -> dict[str, float]:
    latencies, start = [], time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t0)
    return summary(latencies, time.perf_counter() - start)


async def run_async(count: int, call: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    latencies, start = [], time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - t0)
    return summary(latencies, time.perf_counter() - start)


def mail_request(i: int) -> MailRequested:
    return MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION,
                         to=(f"user{i}@kensetsu.example",), values=VALUES)


async def bench_mail(count: int, tmp: Path) -> dict[str, Any]:
    with SmtpPeer() as peer:
        settings = MailSettings(port=peer.port, documents_dir=tmp, timeout_s=5.0)
        connector = MailConnector(settings, documents=DirectoryDocumentStore(
            tmp, "http://127.0.0.1/documents", b"benchmark-key-0123456789"))
        sender = Sender(settings.from_address, settings.from_name, settings.system_name)

        def bare(i: int) -> None:
            message = build_message(mail_request(i), sender, date=datetime.now(UTC))
            with smtplib.SMTP(peer.host, peer.port, timeout=5.0) as smtp:
                smtp.send_message(message)

        warm = WARM_UP
        run_sync(warm, bare)
        await run_async(warm, lambda i: connector.send(mail_request(i)))
        bare_stats = run_sync(count, bare)
        full_stats = await run_async(count, lambda i: connector.send(mail_request(i)))
        received = len(peer.wait_for(2 * (count + warm))) - 2 * warm
    return {"bare_smtplib": bare_stats, "connector": full_stats,
            "added_p50_ms": round(full_stats["p50_ms"] - bare_stats["p50_ms"], 3),
            "mails_received": received}


def erp_request(i: int, prefix: str) -> ErpRegistrationRequested:
    return ErpRegistrationRequested(
        kind=ErpRegistrationKind.CONTRACT, business_key=f"bench:{prefix}:{i}",
        contract_number=f"B{prefix}-{i}", contractor_id="1234567890123456",
        contractor_name="○○建設株式会社", amount_jpy=10_000_000, subject="ベンチマーク工事",
        contract_date=date(2026, 11, 24), period_start=date(2026, 12, 1),
        period_end=date(2027, 3, 31))


async def bench_erp(count: int) -> dict[str, Any]:
    with ErpPeer() as peer:
        connector = ErpConnector(ErpSettings(url=peer.url, timeout_s=5.0))
        service = connector.adapter.service

        def bare(i: int) -> None:
            operation, argument, body = to_soap(erp_request(i, "bare"))
            service[operation](**{argument: body})

        run_sync(WARM_UP, lambda i: bare(-1 - i))
        await run_async(WARM_UP, lambda i: connector.register(erp_request(i, "warm")))
        bare_stats = run_sync(count, bare)
        full_stats = await run_async(count, lambda i: connector.register(erp_request(i, "c")))
        repeat_stats = await run_async(count, lambda i: connector.register(erp_request(i, "c")))
        registered = peer.ledger.count() - 2 * WARM_UP
        await connector.aclose()
    return {"bare_zeep": bare_stats, "connector": full_stats,
            "connector_idempotent_repeat": repeat_stats,
            "added_p50_ms": round(full_stats["p50_ms"] - bare_stats["p50_ms"], 3),
            "registrations": registered}


async def bench_guard(count: int) -> dict[str, float]:
    guard = Guard("noop", policy=RetryPolicy(), breaker=CircuitBreaker(),
                  calendar=MaintenanceCalendar([]), timeout_s=5.0)

    async def noop() -> None:
        return None

    start = time.perf_counter()
    for _ in range(count):
        await guard.call(noop, what="noop")
    per_call = (time.perf_counter() - start) / count
    return {"calls": count, "us_per_call": round(per_call * 1e6, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    count = max(10, min(args.count, 2000))
    with tempfile.TemporaryDirectory() as tmp:
        mail = await bench_mail(count, Path(tmp))
    results = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                    "note": "loopback, sequential, one client"},
        "count": count,
        "mail": mail,
        "erp": await bench_erp(count),
        "guard_only": await bench_guard(count * 50),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
