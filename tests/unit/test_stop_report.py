"""A hub that takes long to stop says where it waits (hub.runtime.report_tasks): after
STOP_REPORT_S and on every further SIGTERM or SIGINT. The real `hub run` meets it in
tests/support/hubproc.py, whose terminate() fails with the end of the hub's log."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hub import runtime
from hub.runtime import report_tasks


async def _waits_for_the_broker(event: asyncio.Event) -> None:
    await event.wait()


async def test_every_task_is_named_with_where_it_waits(
        caplog: pytest.LogCaptureFixture) -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_waits_for_the_broker(event), name="consumer-ledger")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="hub.runtime"):
        report_tasks("still stopping after 30 s")
    event.set()
    await task
    [record] = [r for r in caplog.records if r.name == "hub.runtime"]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert text.startswith("still stopping after 30 s; the hub's tasks and where they wait:")
    assert "-- consumer-ledger" in text
    assert "in _waits_for_the_broker" in text  # the frame it waits in


class _SlowToStop:
    """Stands in for a Hub in Hub.run_until_signalled: starts at once, stops when told."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.may_stop = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopping.set()
        await self.may_stop.wait()


async def _reports(caplog: pytest.LogCaptureFixture, why: str) -> bool:
    for _ in range(200):
        if any(why in r.getMessage() for r in caplog.records):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_slow_stop_is_reported_after_a_while_and_on_another_signal(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "STOP_REPORT_S", 0.3)
    hub = _SlowToStop()
    caplog.set_level(logging.INFO, logger="hub.runtime")
    running = asyncio.create_task(runtime.Hub.run_until_signalled(hub))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(hub.stopping.wait(), 5)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while it drains: where does it wait?
        assert await _reports(caplog, "another signal while stopping; the hub's tasks")
        assert await _reports(caplog, "still stopping after 0.3 s; the hub's tasks")
        hub.may_stop.set()
        await asyncio.wait_for(running, 5)
    finally:
        hub.may_stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


_BLOCKED_LOOP = """
import asyncio, os, signal, time
from hub import runtime

class Blocking:
    async def start(self):
        asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
    async def stop(self):
        time.sleep(1.5)  # blocks the event loop: only faulthandler can tell

runtime.STOP_REPORT_S, runtime.STOP_DUMP_S = 0.2, 0.5
asyncio.run(runtime.Hub.run_until_signalled(Blocking()))
"""


def test_a_stop_that_blocks_the_event_loop_dumps_every_threads_stack() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _BLOCKED_LOOP], cwd=root, timeout=60, check=False,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Timeout (0:00:00.500000)!" in done.stderr  # faulthandler's dump
    assert 'line 9 in stop' in done.stderr  # where the loop's thread was blocked
