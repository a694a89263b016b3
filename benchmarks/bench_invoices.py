"""Benchmark: invoices per second through the official JP PINT rules and the hub's rules.

A 100-line JP PINT invoice (OpenPeppol's 1.1.3 Example1 header, 99 lines at 10 % and one
exempt, issued under a valid registered number) through, on one process and one thread:

1. the gate alone (INV-4: the two compiled stylesheets on Saxon-HE in the gate's Java
   worker process, only the failed assertions sent back),
2. the hub's reader and rules alone (INV-1, INV-2, INV-5 on lxml),
3. the whole decision, ``decide_invoice`` (gate, then rules, then the acceptance and the
   ERP payment request), which is what the pipeline's handler runs per invoice,

plus the one-off cost of starting the worker (once per hub process) and the CPU per invoice
while its JIT compiler warms up (the first ``--warm-up`` invoices). CPU time counts this
process and the worker process. Target: at least 50 invoices per second for (3), so a
month-end batch of thousands clears in a minute.

    .venv/bin/python benchmarks/bench_invoices.py [--count 300] [--warm-up 1500]

Results: benchmarks/results/invoices.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.invoices import gate  # noqa: E402
from pipelines.invoices.rules import decide_invoice  # noqa: E402
from pipelines.invoices.ubl import NS, read_jp_pint  # noqa: E402
from schemas.invoice import InvoiceAccepted, InvoiceSubmitted  # noqa: E402
from tests.unit.invoice_docs import VALID_T, Doc, example, with_valid_number  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "invoices.json"
LINES = 100
WARM_UP = 10


def worker_cpu_s() -> float:
    """CPU seconds used so far by the gate's worker process (0 when there is none)."""
    running = getattr(gate, "_gate", None)
    pid = running.pid if running is not None else None
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
TARGET_PER_S = 50


def hundred_lines() -> str:
    """Example1 with 99 lines of ¥10,000 at 10 % and its exempt line: ¥993,490 payable."""
    doc = Doc(with_valid_number(example("Example1-minimum")))
    for line in doc.root.findall("cac:InvoiceLine", NS)[:2]:
        doc.root.remove(line)
    exempt = doc.find("cac:InvoiceLine")
    doc.root.remove(exempt)
    for n in range(LINES - 1):
        doc.add_line(10_000, "S", "10", f"資材 {n + 1:03d}")
    doc.root.append(exempt)
    for n, line in enumerate(doc.root.findall("cac:InvoiceLine", NS), start=1):
        ident = line.find("cbc:ID", NS)
        assert ident is not None
        ident.text = str(n)
    taxable = 10_000 * (LINES - 1)
    doc.set("cac:TaxTotal/cbc:TaxAmount", str(taxable // 10))
    doc.set("cac:TaxTotal/cac:TaxSubtotal[1]/cbc:TaxableAmount", str(taxable))
    doc.set("cac:TaxTotal/cac:TaxSubtotal[1]/cbc:TaxAmount", str(taxable // 10))
    total = taxable + 3_490
    doc.totals(LineExtensionAmount=total, TaxExclusiveAmount=total,
               TaxInclusiveAmount=total + taxable // 10, PayableAmount=total + taxable // 10)
    return etree.tostring(doc.root, encoding="unicode")


def measure(run: Callable[[], Any], count: int) -> dict[str, float]:
    """Wall-clock rate and latency, and the CPU time per invoice (this process, all its
    threads, and the gate's worker): on a shared machine the CPU figure is what one
    dedicated core would give."""
    for _ in range(WARM_UP):
        run()
    latencies = []
    start, cpu = time.perf_counter(), time.process_time() + worker_cpu_s()
    for _ in range(count):
        t = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    cpu = time.process_time() + worker_cpu_s() - cpu
    ordered = sorted(latencies)
    return {"invoices": count, "per_second": round(count / wall, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(count * 0.95) - 1] * 1000, 2),
            "cpu_ms_per_invoice": round(cpu / count * 1000, 2),
            "per_cpu_second": round(count / cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=1500,
                        help="invoices through the gate before measuring (JIT warm-up)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    xml = hundred_lines()
    cmd = InvoiceSubmitted(case_id="R5-KOJI-0001", contract_number="R5-0001",
                           contractor_id="1234567890123456", ubl_xml=xml)

    def decide() -> None:
        decision = decide_invoice(cmd, registered=frozenset({VALID_T}), accepted_before={},
                                  entity="ashikaga-city")
        assert isinstance(decision.accepted, InvoiceAccepted), decision.emits

    t = time.perf_counter()
    assert gate.run_gate(xml) == ()  # starts the worker: once per process
    compile_s = time.perf_counter() - t
    warming = measure(lambda: gate.run_gate(xml), args.warm_up)
    read = read_jp_pint(xml)
    assert read.fields is not None, read.violations
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                    "cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "jp_pint": gate.jp_pint_version(),
        "invoice": {"lines": LINES, "bytes": len(xml.encode()),
                    "payable_jpy": read.fields.payable_amount},
        "first_gate_call_with_compile_s": round(compile_s, 3),
        "gate_while_warming_up": warming,
        "gate_only": measure(lambda: gate.run_gate(xml), args.count),
        "rules_only": measure(lambda: read_jp_pint(xml), args.count),
        "gate_and_rules": measure(decide, args.count),
        "target_per_s": TARGET_PER_S,
    }
    whole = result["gate_and_rules"]
    result["meets_target"] = {"wall_clock": whole["per_second"] >= TARGET_PER_S,
                              "one_dedicated_core": whole["per_cpu_second"] >= TARGET_PER_S}
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
