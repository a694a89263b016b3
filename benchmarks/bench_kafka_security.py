"""Benchmark: what TLS + SCRAM costs the core (target: at most 15 % fewer messages/s).

Runs ``bench_delivery`` (the hub variant: idempotent consumer + outbox on PostgreSQL) and
``bench_registration`` on the PLAINTEXT test broker and on the secured broker
(``deploy/kafka.sh --secure``: SASL_SSL, TLS 1.3, SCRAM-SHA-512, ACLs, the hub's
principal) in the same session, alternating (plain first in odd rounds, secure first in
even ones), so that the machine's drift hits both alike. Point ``HUB_TEST_KAFKA`` at a
broker that nothing else uses meanwhile, like the secured one: a broker serving other
work makes the PLAINTEXT figures slower. Each run is its own process on
fresh topics and a fresh database. Reports every run, the median per broker, and the
secured broker's figure as a share of the plain one's.
Results: benchmarks/results/kafka_security.json.

    .venv/bin/python -m benchmarks.bench_kafka_security [--rounds 2] [--delivery-n 20000]
        [--registration-n 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_LOSS = 0.15


def run(bench: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        if bench == "delivery":
            argv = ["-m", "benchmarks.bench_delivery", "--variants", "hub",
                    "--n", str(args.delivery_n), "--seconds", str(args.latency_seconds)]
        else:
            argv = ["-m", "benchmarks.bench_registration", "--n", str(args.registration_n)]
        subprocess.run([sys.executable, *argv, "--output", str(out)], cwd=ROOT, check=True,
                       env={**os.environ, "BENCH_KAFKA": mode, "PYTHONPATH": str(ROOT)},
                       stdout=subprocess.DEVNULL, timeout=1800)
        result = json.loads(out.read_text())
    if bench == "delivery":
        hub = result["results"]["hub"]
        return {"messages_per_s": hub["messages_per_s"], "p50_ms": hub["latency_p50_ms"],
                "p99_ms": hub["latency_p99_ms"],
                "hub_cpu_ms_per_message": hub.get("cpu_ms_per_message")}
    return {"messages_per_s": result["commands_per_s"],
            "hub_cpu_ms_per_message": result.get("hub_cpu_ms_per_command")}


def main(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        bench: {"plain": [], "secure": []} for bench in ("delivery", "registration")}
    for round_no in range(1, args.rounds + 1):
        order = ("plain", "secure") if round_no % 2 else ("secure", "plain")
        for bench in ("delivery", "registration"):
            for mode in order:
                figures = run(bench, mode, args)
                figures["round"] = round_no
                runs[bench][mode].append(figures)
                print(f"round {round_no} {bench} {mode}: {figures}", flush=True)
    summary: dict[str, Any] = {}
    for bench, by_mode in runs.items():
        medians = {mode: statistics.median(r["messages_per_s"] for r in rs)
                   for mode, rs in by_mode.items()}
        share = medians["secure"] / medians["plain"]
        cpu = {mode: statistics.median(r["hub_cpu_ms_per_message"] for r in rs)
               for mode, rs in by_mode.items()
               if all(r.get("hub_cpu_ms_per_message") is not None for r in rs)}
        summary[bench] = {"median_messages_per_s": medians,
                          "median_hub_cpu_ms_per_message": cpu,
                          "secure_vs_plain": round(share, 3),
                          "loss": round(1 - share, 3),
                          "meets_target": 1 - share <= TARGET_LOSS,
                          "runs": by_mode}
    return {
        "benchmark": "kafka security: TLS + SCRAM against PLAINTEXT, alternating",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "kafka": "Apache Kafka 4.1.1, one KRaft node each on loopback: PLAINTEXT, and "
                 "SASL_SSL with SCRAM-SHA-512, TLS 1.3 and ACLs (deploy/kafka.sh --secure)",
        "database": "PostgreSQL on loopback, fsync on",
        "target": f"at most {TARGET_LOSS:.0%} fewer messages/s with TLS + SCRAM",
        "results": summary,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delivery-n", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=5)
    parser.add_argument("--registration-n", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS / "kafka_security.json")
    cli = parser.parse_args()
    outcome = main(cli)
    cli.output.write_text(json.dumps(outcome, indent=2))
    for bench, figures in outcome["results"].items():
        print(f"{bench}: plain {figures['median_messages_per_s']['plain']:.0f}/s, "
              f"secure {figures['median_messages_per_s']['secure']:.0f}/s "
              f"({figures['loss']:.1%} fewer; target at most {TARGET_LOSS:.0%}); hub CPU "
              f"ms per message {figures['median_hub_cpu_ms_per_message']}")
