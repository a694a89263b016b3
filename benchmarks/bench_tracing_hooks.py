"""Benchmark: what the tracing hooks cost per message, in one process, without Kafka.

The hub's per-message tracing path as processing.py and outbox.py run it: one consumer
span (``tracing.consuming``) around a handler that emits one record (``record_row``, which
writes the ``traceparent``), 20,000 messages a block. Blocks alternate tracing off, on
with every trace sampled, and on with none sampled, seven times; the process's CPU time
per message counts the export thread too (each block ends with ``tracing.shutdown``, which
exports what waits, to a real Jaeger started here). The minimum of the blocks is the
figure (the least disturbed by other work on the machine), the median beside it. Both
handler kinds: a transactional step (``calls_out=False``) and an effect that may call out
(its span also made current in OpenTelemetry's context).
Results: benchmarks/results/tracing_hooks.json.

    .venv/bin/python -m benchmarks.bench_tracing_hooks [--blocks 7] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub import tracing
from hub.outbox import record_row
from hub.settings import TracingSettings
from schemas.envelope import new_envelope
from tests.support.jaeger import Jaeger
from tests.support.ledger import LedgerEntryRequested

RESULTS = Path(__file__).resolve().parent / "results"
MODES = (("off", None), ("every trace sampled", 1.0), ("no trace sampled", 0.0))


def block(n: int, calls_out: bool) -> None:
    env = new_envelope(LedgerEntryRequested(entry_no=1, amount=5), correlation_id="case-1",
                       procuring_entity="saitama-pref", producer="bench")
    now = datetime.now(UTC)
    for _ in range(n):
        headers = [("content-type", b"application/json"), ("x-hub-schema", b"1")]
        with tracing.consuming("ledger", "bench.in", headers, calls_out=calls_out):
            record_row("bench.out", env, now)


def measure(otlp: str, n: int, blocks: int, calls_out: bool) -> dict[str, Any]:
    found: dict[str, list[float]] = {name: [] for name, _ in MODES}
    block(2_000, calls_out)  # warm up
    for _ in range(blocks):
        for name, ratio in MODES:
            if ratio is not None:
                tracing.configure(TracingSettings(enabled=True, otlp_endpoint=otlp,
                                                  service_name="bench-tracing-hooks",
                                                  sample_ratio=ratio))
            started = time.process_time()
            block(n, calls_out)
            tracing.shutdown()  # what waits is exported, and counted
            found[name].append(1e6 * (time.process_time() - started) / n)
    out: dict[str, Any] = {name: {"us_per_message_min": round(min(v), 2),
                                  "us_per_message_median": round(statistics.median(v), 2)}
                           for name, v in found.items()}
    off = min(found["off"])
    for name, _ in MODES[1:]:
        out[name]["added_us_min"] = round(min(found[name]) - off, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        jaeger = Jaeger(Path(tmp))
        jaeger.start()
        try:
            result = {
                "benchmark": "tracing hooks per message, one process, off / sampled / "
                             "unsampled alternating",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "exporter": "OTLP/HTTP to Jaeger v1.75.0 on loopback (in-memory storage)",
                "messages_per_block": args.n, "blocks": args.blocks,
                "transactional_step": measure(jaeger.otlp_endpoint, args.n, args.blocks,
                                              calls_out=False),
                "effect_step": measure(jaeger.otlp_endpoint, args.n, args.blocks,
                                       calls_out=True),
            }
            result["machine"]["load_1m_at_end"] = round(os.getloadavg()[0], 1)
        finally:
            jaeger.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracing_hooks.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
