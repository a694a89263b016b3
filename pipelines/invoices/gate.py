"""The official JP PINT rules as a gate (INV-4): OpenPeppol's compiled Schematron, run by
Saxon-HE in a supervised Java worker process.

Every incoming JP PINT invoice goes through the two stylesheets of the vendored JP PINT
resource package (``jp_pint/``, version in ``jp_pint/MANIFEST.json``): the PINT rules
shared by every jurisdiction (``ibr-*``) and the Japanese aligned rules (``aligned-ibr*-jp``).
Each failed assertion becomes a :class:`GateFinding` with the official rule ID, its flag
and its text; :func:`gate_violations` makes them INV-4 violations. A ``fatal`` finding
rejects the invoice; a ``warning`` is recorded with the acceptance. A document the
stylesheets cannot evaluate (a dynamic XPath error, e.g. an amount ``2.8E5`` that is no
xs:decimal) is one fatal finding, :data:`UNEVALUABLE`.

The stylesheets are XSLT 2.0, unmodified. They run on Saxon-HE in one long-lived JVM per
hub process (``deploy/jp_pint_gate/GateWorker.java``, built by ``deploy/jp_pint_gate.sh``),
started on first use: the stylesheets are compiled once and run JIT-compiled there, and the
worker sends back only the failed assertions (docs/performance.md says why). One invoice at
a time goes to the worker (a lock); at most :attr:`JvmGate.max_waiting` callers wait for it.
A worker that dies is replaced and the invoice sent again once; a worker that does not
answer within the timeout is killed. Whenever the rules could not be run, :func:`run_gate`
raises :class:`GateUnavailable`: the handler fails, the consumer retries the invoice later
(and dead-letters it after its last attempt), and no invoice passes unchecked.
The document reaching the gate has already been parsed by the hardened reader (:mod:`.ubl`);
the worker parses it again refusing any DOCTYPE.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Literal

from schemas.rejection import RuleViolation

__all__ = ["RULES_DIR", "UNEVALUABLE", "WORKER_DIR", "GateFinding", "GateUnavailable",
           "JvmGate", "gate_violations", "jp_pint_version", "run_gate", "worker_command"]

RULES_DIR = Path(__file__).with_name("jp_pint")
WORKER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "jp_pint_gate"
"""The worker's source, and its jars and classes once ``deploy/jp_pint_gate.sh build`` ran."""
Flag = Literal["fatal", "warning", "information"]
UNEVALUABLE = "pint-evaluation"
"""The finding's rule when the official rules could not evaluate the document at all."""
_FRAME = struct.Struct(">I")


@dataclass(frozen=True)
class GateFinding:
    """One failed assertion of the official rules."""

    rule: str
    flag: Flag
    text: str
    location: str


class GateUnavailable(Exception):
    """INV-4 could not be run on the invoice (the worker is missing, dead, slow or busy).

    Not a verdict: the invoice is neither accepted nor rejected, its message is retried.
    """

    def __init__(self, why: str) -> None:
        super().__init__(
            f"INV-4: JP PINT の公式ルールを実行できません（{why}）。請求書は後で再処理されます。"
            f" / INV-4: the official JP PINT rules could not be run ({why}); the invoice is "
            "retried later, never accepted unchecked.")
        self.why = why


@cache
def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RULES_DIR / "MANIFEST.json").read_text("utf-8"))
    return data


def jp_pint_version() -> str:
    """The version of the vendored JP PINT resource package, e.g. ``1.1.3``."""
    return str(_manifest()["version"])


def worker_command(worker_dir: Path = WORKER_DIR) -> list[str]:
    """The command that starts the worker on the vendored stylesheets."""
    return ["java", "-XX:+UseSerialGC", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError",
            "-cp", f"{worker_dir / 'classes'}{os.pathsep}{worker_dir / 'lib' / '*'}",
            "GateWorker", *(str(RULES_DIR / name) for name in _manifest()["stylesheets"])]


class _WorkerDied(Exception):
    pass


class _WorkerTimeout(Exception):
    pass


class _Worker:
    """One running worker process and its framed pipes."""

    def __init__(self, command: Sequence[str], startup_timeout: float) -> None:
        self.owner = os.getpid()
        # Kept open for the worker's life: its stderr, read back when it ends.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        # The command is the hub's own (worker_command), never taken from a message.
        self.proc = subprocess.Popen(list(command), stdin=subprocess.PIPE,  # noqa: S603
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        try:
            ready = self.exchange(None, startup_timeout)
        except (_WorkerDied, _WorkerTimeout):
            self.close()
            raise
        if not ready.startswith("ready\t"):
            self.close()
            raise _WorkerDied(f"the worker did not start: {ready[:200]}")
        self.version = ready.partition("\t")[2]

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def stderr_tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, self._stderr.tell() - 400))
            return " ".join(self._stderr.read().decode("utf-8", "replace").split())
        except (OSError, ValueError):
            return ""

    def exchange(self, payload: bytes | None, timeout: float) -> str:
        """Send one frame (none: only read) and read one frame back."""
        deadline = time.monotonic() + timeout
        outgoing = memoryview(_FRAME.pack(len(payload)) + payload) if payload is not None \
            else memoryview(b"")
        incoming = bytearray()
        wanted: int | None = None
        with selectors.DefaultSelector() as selector:
            if outgoing:
                selector.register(self._in, selectors.EVENT_WRITE)
            selector.register(self._out, selectors.EVENT_READ)
            while wanted is None or len(incoming) < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _WorkerTimeout(f"no answer within {timeout:g} s")
                for key, _ in selector.select(left):
                    if key.fd == self._in:
                        try:
                            sent = os.write(self._in, outgoing)
                        except (BrokenPipeError, ConnectionResetError) as exc:
                            raise _WorkerDied(self._ended()) from exc
                        outgoing = outgoing[sent:]
                        if not outgoing:
                            selector.unregister(self._in)
                    else:
                        chunk = os.read(self._out, 1 << 16)
                        if not chunk:
                            raise _WorkerDied(self._ended())
                        incoming += chunk
                        if wanted is None and len(incoming) >= _FRAME.size:
                            wanted = _FRAME.size + _FRAME.unpack_from(incoming)[0]
        return bytes(incoming[_FRAME.size:]).decode("utf-8")

    def _ended(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = self.stderr_tail()
        return f"the worker ended (exit status {code})" + (f": {tail}" if tail else "")

    def close(self) -> None:
        if self.owner == os.getpid():
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _flag(value: str) -> Flag:
    return "warning" if value == "warning" else "information" if value == "information" \
        else "fatal"


def _findings(answer: str) -> tuple[GateFinding, ...]:
    head, _, rest = answer.partition("\n")
    status, _, message = head.partition("\t")
    if status == "unevaluable":
        message = " ".join(message.split())[:300] or "unknown error"
        return (GateFinding(rule=UNEVALUABLE, flag="fatal", location="",
                            text=f"the rules could not evaluate the document: {message}"),)
    if status != "ok":
        raise _WorkerDied(f"the worker answered {head[:100]!r}")
    findings = []
    for line in rest.split("\n") if rest else ():
        flag, rule, location, text = line.split("\t", 3)
        findings.append(GateFinding(rule=rule or "unnamed", flag=_flag(flag),
                                    text=" ".join(text.split()), location=location))
    return tuple(findings)


class JvmGate:
    """The supervised worker: started on first use, replaced when it dies.

    ``timeout``: seconds one invoice may take; ``startup_timeout``: seconds the worker may
    take to compile the stylesheets and say it is ready; ``max_waiting``: callers that may
    wait for the worker at once (beyond that, :class:`GateUnavailable` at once).
    """

    def __init__(self, command: Sequence[str] | None = None, *, timeout: float = 60.0,
                 startup_timeout: float = 180.0, max_waiting: int = 8) -> None:
        self.command = list(command) if command is not None else worker_command()
        self.timeout, self.startup_timeout, self.max_waiting = timeout, startup_timeout, \
            max_waiting
        self.starts = 0
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0

    @property
    def pid(self) -> int | None:
        """The running worker's process ID (None: none running)."""
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.alive() else None

    def run(self, xml: str) -> tuple[GateFinding, ...]:
        """The official rules' failed assertions for one invoice (empty: it passes them)."""
        with self._count_lock:
            if self._waiting >= self.max_waiting:
                raise GateUnavailable(f"{self._waiting} invoices already wait for the rules")
            self._waiting += 1
        try:
            with self._lock:
                return self._run(xml.encode("utf-8"))
        finally:
            with self._count_lock:
                self._waiting -= 1

    def _run(self, data: bytes) -> tuple[GateFinding, ...]:
        for attempt in (1, 2):
            worker = self._running()
            try:
                return _findings(worker.exchange(data, self.timeout))
            except _WorkerDied as died:
                self._discard()
                if attempt == 2:
                    raise GateUnavailable(str(died)) from died
            except _WorkerTimeout as slow:
                self._discard()
                raise GateUnavailable(str(slow)) from slow
        raise AssertionError("unreachable")

    def _running(self) -> _Worker:
        worker = self._worker
        if worker is not None and worker.alive():
            return worker
        self._discard()
        self.starts += 1
        try:
            self._worker = _Worker(self.command, self.startup_timeout)
        except (_WorkerDied, _WorkerTimeout) as exc:
            raise GateUnavailable(f"the worker did not start: {exc}") from exc
        except OSError as exc:
            raise GateUnavailable(f"the worker could not be started: {exc} (run "
                                  "deploy/jp_pint_gate.sh build)") from exc
        return self._worker

    def _discard(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def close(self) -> None:
        """Stop the worker (a later :meth:`run` starts a new one)."""
        with self._lock:
            self._discard()


_gate: JvmGate | None = None
_gate_lock = threading.Lock()


def run_gate(xml: str) -> tuple[GateFinding, ...]:
    """The official rules' failed assertions for one invoice (empty: it passes them), on the
    process's worker; :class:`GateUnavailable` when they could not be run."""
    global _gate  # noqa: PLW0603 - one worker per process, shared by every configuration
    with _gate_lock:
        if _gate is None:
            _gate = JvmGate()
            atexit.register(_gate.close)
        gate = _gate
    return gate.run(xml)


def _violation(finding: GateFinding) -> RuleViolation:
    level_ja = {"fatal": "エラー", "warning": "警告", "information": "情報"}[finding.flag]
    message_ja = (f"JP PINT {jp_pint_version()} の公式ルールで文書を評価できません"
                  f"（金額・日付などの書式が不正です）：{finding.text}"
                  if finding.rule == UNEVALUABLE else
                  f"JP PINT {jp_pint_version()} の公式ルール {finding.rule}（{level_ja}）に"
                  f"適合しません：{finding.text}")
    return RuleViolation(
        rule_id="INV-4", reference=finding.rule, flag=finding.flag, message_ja=message_ja,
        message_en=(f"The invoice breaks the official JP PINT {jp_pint_version()} rule "
                    f"{finding.rule} ({finding.flag}): {finding.text}"),
        next_step_ja=("請求書作成ソフトでルールの指摘箇所を直し、JP PINTとして出力し直して"
                      "再送してください。" if finding.flag == "fatal"
                      else "支払には影響しませんが、次回の請求書から直してください。"),
        next_step_en=("Correct what the rule points at in your invoicing software, export the "
                      "invoice again as JP PINT and resend it." if finding.flag == "fatal"
                      else "This does not stop the payment; correct it in future invoices."),
        field=finding.location[:300] or None)


def gate_violations(findings: tuple[GateFinding, ...]) -> tuple[tuple[RuleViolation, ...],
                                                                tuple[RuleViolation, ...]]:
    """``(fatal, warnings)`` as INV-4 violations; information-only findings are dropped."""
    fatal = tuple(_violation(f) for f in findings if f.flag == "fatal")
    warnings = tuple(_violation(f) for f in findings if f.flag == "warning")
    return fatal, warnings
