"""The hub's HTTP app served by uvicorn (the hub's own server) on loopback, in a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from hub.runtime import server_tls
from hub.settings import HttpSettings
from tests.support.hubproc import free_port


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # not the main thread: no signals
        yield


class Served:
    """``with Served(app, http) as s:`` -- ``s.port`` answers until the block ends."""

    def __init__(self, app: Any, http: HttpSettings | None = None) -> None:
        self.port = free_port()
        self.server = _Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                             log_level="warning", lifespan="off",
                                             **server_tls(http or HttpSettings())))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
