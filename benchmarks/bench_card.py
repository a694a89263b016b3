"""Benchmark: IC-card signing through the card agent with the virtual card (issue 4).

Through the real PC/SC stack (pcscd + vpcd + the virtual card process of tests/card):
1. raw card signatures per second: PSO: COMPUTE DIGITAL SIGNATURE of a SHA-256
   DigestInfo (RSA-2048), PIN verified once;
2. PAdES B-T signatures of a 1 MB PDF: latency (p50, p95, max) of one whole signature
   (hash, signed attributes, card signature, RFC 3161 timestamp from the reference TSA
   over loopback HTTP, PDF write), and signatures per second. Target: under 300 ms each.
Also the same PAdES B-T signature with a software key, to show what the card adds.

Needs pcscd with vpcd running (``bash deploy/services.d/pcscd.sh start``).

    .venv/bin/python benchmarks/bench_card.py [--count 30] [--raw 200]

Results: benchmarks/results/card.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from card_agent.card import CardSession  # noqa: E402
from card_agent.signing import sign_pdf  # noqa: E402
from card_agent.virtualcard import VirtualCard  # noqa: E402
from connectors.tsa import TsaConnector, TsaSettings  # noqa: E402
from connectors.tsa.peer import ReferenceTsa  # noqa: E402
from tests.card.fixtures import PIN, open_card, seat  # noqa: E402
from tests.card.pdfs import make_pdf  # noqa: E402
from tests.card.pki import shared_pki  # noqa: E402
from tests.card.softcard import SoftCard  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "card.json"


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "per_second": round(len(ordered) / sum(ordered), 2),
    }


def _timed(count: int, op: Callable[[], Any]) -> list[float]:
    op()  # warm-up: imports, TLS-free HTTP connection setup, pyHanko caches
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        op()
        samples.append(time.perf_counter() - started)
    return samples


def _pades(card: CardSession, tsa: TsaConnector, pdf: bytes, chain: Any) -> Callable[[], Any]:
    def run() -> bytes:
        return sign_pdf(pdf, card, tsa.timestamper(), chain=chain)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="PAdES signatures per run")
    parser.add_argument("--raw", type=int, default=200, help="raw card signatures")
    parser.add_argument("--size", type=int, default=1_000_000, help="PDF size in bytes")
    args = parser.parse_args()

    pki = shared_pki()
    creds = pki.issue_card("山田 太郎", "埼玉県さいたま市浦和区高砂3-15-1", 990001)
    pdf = make_pdf(args.size)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()
                    or platform.machine()},
        "pdf_bytes": len(pdf),
        "key": "RSA-2048, PKCS#1 v1.5, SHA-256",
    }
    card_proc = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    try:
        with ReferenceTsa(pki) as server:
            tsa = TsaConnector(TsaSettings(url=server.url), pki.trust_roots)
            with open_card() as card:
                card.verify_pin(PIN)
                digest = hashlib.sha256(b"benchmark").digest()
                results["card_raw_signature"] = _stats(
                    _timed(args.raw, lambda: card.sign_digest(digest, "sha256")))
                results["pades_bt_1mb_virtual_card"] = _stats(
                    _timed(args.count, _pades(card, tsa, pdf, creds.chain)))
            results["pades_bt_1mb_software_key"] = _stats(
                _timed(args.count, _pades(SoftCard(creds), tsa, pdf, creds.chain)))
            results["tsa_requests"] = server.requests_served
    finally:
        card_proc.stop()
    p50 = results["pades_bt_1mb_virtual_card"]["p50_ms"]
    results["target_ms"] = 300
    results["meets_target"] = results["pades_bt_1mb_virtual_card"]["p95_ms"] < 300
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"PAdES B-T on {len(pdf):,} bytes through the virtual card: p50 {p50} ms")


if __name__ == "__main__":
    main()
