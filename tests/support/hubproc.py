"""Running the hub in tests: in this process, or as a real `hub run` process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hub.settings import KafkaSettings, RetrySettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(kafka: str, db_url: str, unique: str, **kw: object) -> Settings:
    retry = kw.pop("retry", RetrySettings(max_attempts=3, base_delay_s=0.05, max_delay_s=0.2,
                                          poll_interval_s=0.05))
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka, group_prefix=f"t{unique}"),
        database_url=db_url,  # type: ignore[arg-type]
        http_port=free_port(),
        retry=retry,
        **kw,  # type: ignore[arg-type]
    )


async def wait_for(predicate: Callable[[], Awaitable[bool] | bool], timeout_s: float = 60.0,
                   what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class HubProcess:
    """A real `hub run` process with the test ledger wiring."""

    def __init__(self, kafka: str, db_url: str, group_prefix: str, topic_prefix: str,
                 log_path: Path, *, batch: int = 500,
                 bootstrap: str = "tests.support.ledger:wiring",
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.bootstrap = bootstrap
        self.log_path = log_path
        self.env = {
            **os.environ,
            "HUB_KAFKA__BOOTSTRAP_SERVERS": kafka,
            "HUB_KAFKA__GROUP_PREFIX": group_prefix,
            "HUB_KAFKA__BATCH_MAX_RECORDS": str(batch),
            "HUB_DATABASE_URL": db_url,
            "HUB_HTTP_PORT": str(self.port),
            "HUB_LOG_FORMAT": "text",
            "LEDGER_TOPIC_PREFIX": topic_prefix,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--bootstrap", self.bootstrap],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, and the exit code; a hub that does not stop fails with its log's end
        (after 30 s a stopping hub logs where each of its tasks waits)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            tail = self.log_path.read_text(errors="replace")[-12_000:]
            raise AssertionError(f"the hub has not stopped {timeout_s:g} s after SIGTERM; "
                                 f"the end of its log:\n{tail}") from None

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
