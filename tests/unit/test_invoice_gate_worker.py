"""INV-4's worker process (pipelines/invoices/gate.py) against the real Saxon-HE worker.

The gate never lets an invoice through unchecked: a worker that dies is replaced and the
invoice sent again; a worker that is missing, cannot start, hangs or is busy makes the
gate raise :class:`GateUnavailable`, which fails the handler so that the consumer retries
the invoice (hub/failures.py), instead of returning a verdict.

A relay (a small Python program between the gate and the real worker, written per test)
makes the worker die or hang at a chosen invoice, deterministically.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from pipelines.invoices import gate, rules
from pipelines.invoices.gate import GateUnavailable, JvmGate, worker_command
from schemas.invoice import InvoiceSubmitted
from tests.unit.invoice_docs import VALID_T, example, with_valid_number

VALID = with_valid_number(example("Example1-minimum"))
BROKEN = VALID.replace("<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
                       "<cbc:InvoiceTypeCode>383</cbc:InvoiceTypeCode>")
RELAY = '''
import os, struct, subprocess, sys
mode, marker, *command = sys.argv[1:]
worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    return head + stream.read(struct.unpack(">I", head)[0])
out = sys.stdout.buffer
out.write(frame(worker.stdout)); out.flush()  # ready
seen = 0
while (request := frame(sys.stdin.buffer)) is not None:
    seen += 1
    if seen == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        if mode == "die":
            worker.kill()
            os._exit(9)  # the request was read, no answer: dead mid-invoice
        sys.stdin.buffer.read()  # hang: read on, never answer
    worker.stdin.write(request); worker.stdin.flush()
    out.write(frame(worker.stdout)); out.flush()
'''


def relayed(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "relay.py"
    script.write_text(RELAY, "utf-8")
    return [sys.executable, str(script), mode, str(tmp_path / "done"), *worker_command()]


def broken_rules(findings: tuple[gate.GateFinding, ...]) -> set[str]:
    return {f.rule for f in findings if f.flag == "fatal"}


def test_the_worker_gives_the_official_verdicts() -> None:
    g = JvmGate()
    try:
        assert g.run(VALID) == ()
        assert "aligned-ibrp-cl-02-jp" in broken_rules(g.run(BROKEN))
        assert g.starts == 1
    finally:
        g.close()
    assert g.pid is None


def test_a_worker_killed_between_invoices_is_replaced() -> None:
    g = JvmGate()
    try:
        assert g.run(VALID) == ()
        first = g.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert "aligned-ibrp-cl-02-jp" in broken_rules(g.run(BROKEN))
        assert g.starts == 2
        assert g.pid not in (None, first)
    finally:
        g.close()


def test_a_worker_dead_mid_invoice_is_replaced_and_the_invoice_checked(tmp_path: Path) -> None:
    g = JvmGate(relayed(tmp_path, "die"))
    try:
        assert g.run(VALID) == ()
        # The second invoice kills the worker after it was sent: the gate starts a new one
        # and sends the same invoice again, which is judged, not passed.
        assert "aligned-ibrp-cl-02-jp" in broken_rules(g.run(BROKEN))
        assert (tmp_path / "done").exists()
        assert g.starts == 2
        assert g.run(VALID) == ()
    finally:
        g.close()


def test_a_hanging_worker_is_killed_and_the_invoice_not_judged(tmp_path: Path) -> None:
    g = JvmGate(relayed(tmp_path, "hang"), timeout=2.0)
    try:
        assert g.run(VALID) == ()
        hung = g.pid
        with pytest.raises(GateUnavailable, match="no answer within 2 s"):
            g.run(BROKEN)
        assert g.pid is None  # killed, not left behind
        assert hung is not None
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)
        assert "aligned-ibrp-cl-02-jp" in broken_rules(g.run(BROKEN))  # the retry is judged
        assert g.starts == 2
    finally:
        g.close()


def test_a_worker_that_cannot_start_makes_the_gate_unavailable(tmp_path: Path) -> None:
    missing = JvmGate([str(tmp_path / "no-java"), "GateWorker"])
    with pytest.raises(GateUnavailable, match="could not be started"):
        missing.run(VALID)
    failing = JvmGate(["java", "-cp", str(tmp_path), "GateWorker"])
    with pytest.raises(GateUnavailable, match=r"did not start.*GateWorker") as caught:
        failing.run(VALID)
    assert "INV-4" in str(caught.value)
    assert "再処理" in str(caught.value)


def test_callers_beyond_the_bound_are_turned_away_at_once() -> None:
    with pytest.raises(GateUnavailable, match="already wait"):
        JvmGate(max_waiting=0).run(VALID)


def test_an_unavailable_gate_fails_the_decision_so_the_invoice_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No verdict without the rules: decide_invoice raises, the handler fails, the consumer
    schedules the message again."""
    monkeypatch.setattr(gate, "_gate", JvmGate([str(tmp_path / "no-java")]))
    cmd = InvoiceSubmitted(case_id="R5-KOJI-0001", contract_number="R5-0001",
                           contractor_id="1234567890123456", ubl_xml=VALID)
    with pytest.raises(GateUnavailable):
        rules.decide_invoice(cmd, registered=frozenset({VALID_T}), accepted_before={},
                             entity="ashikaga-city")
