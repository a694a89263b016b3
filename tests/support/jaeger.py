"""A real Jaeger (v2, built by deploy/jaeger.sh) on loopback for the trace tests.

In-memory storage, an OTLP/HTTP receiver and the query API, each on a free port; nothing
else listens. The binary is built on first use (a few minutes) and cached.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.hubproc import ROOT, free_port

SCRIPT = ROOT / "deploy" / "jaeger.sh"


def binary() -> Path:
    out = subprocess.run(["bash", str(SCRIPT), "path"], check=True, capture_output=True,
                         text=True, timeout=3600)
    return Path(out.stdout.strip().splitlines()[-1])


class Jaeger:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.otlp_port = free_port()
        self.query_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self, timeout_s: float = 120) -> None:
        exe = binary()
        config = self.workdir / "jaeger.yaml"
        config.write_text(subprocess.run(
            ["bash", str(SCRIPT), "config", str(self.otlp_port), str(self.query_port)],
            check=True, capture_output=True, text=True).stdout)
        log = (self.workdir / "jaeger.log").open("ab")
        self.proc = subprocess.Popen([str(exe), "--config", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaeger exited ({self.proc.returncode}): "
                                   f"{self.log_tail()}")
            if self._get("/api/services") is not None and self._port_open(self.otlp_port):
                return
            time.sleep(0.2)  # polling the port: the condition is "Jaeger answers"
        raise RuntimeError(f"jaeger did not answer within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.workdir / "jaeger.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    @staticmethod
    def _port_open(port: int) -> bool:
        import socket

        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _get(self, path: str) -> Any | None:
        try:
            with urllib.request.urlopen(self.query_url + path, timeout=5) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def traces(self, service: str, limit: int = 100) -> list[dict[str, Any]]:
        """The traces with spans of ``service`` (Jaeger's query API, /api/traces)."""
        body = self._get(f"/api/traces?service={service}&limit={limit}&lookback=1h")
        return list((body or {}).get("data") or [])

    def stop(self) -> None:
        """Stop it (its storage is in memory: nothing to keep, so no long graceful stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
