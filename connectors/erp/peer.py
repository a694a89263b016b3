"""The reference ERP peer: the spyne SOAP service over HTTP on loopback.

WSDL at ``<url>?wsdl``. Tests and the local default call it through the real
connector (zeep); a test can put it in maintenance or make it slow through
:attr:`ErpPeer.state`. Garbage and hostile answers come from a raw HTTP
server in the tests, not from here.

Run it alone: ``python -m connectors.erp.peer --port 8090 --db var/erp.sqlite3``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne.server.wsgi import WsgiApplication

from connectors.erp.service import ErpLedger, PeerState, build_application

__all__ = ["ErpPeer"]


# Client faults (refused data) are answers of the ERP, not errors of the peer: spyne would
# log each with a traceback. Server faults still log on spyne.application.server.
logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the tests and benchmarks make thousands."""


class ErpPeer:
    """The reference ERP on ``host:port`` (0 = a free port) in its own thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 db: Path | str = ":memory:") -> None:
        self.state = PeerState()
        self.ledger = ErpLedger(db)
        app = WsgiApplication(build_application(self.ledger, self.state))
        self._server = make_server(host, port, app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        with socket.create_connection((self.host, self.port), timeout=5):
            pass

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the local default)."""
        try:
            self._server.serve_forever(poll_interval=0.5)
        finally:
            self._server.server_close()

    def __enter__(self) -> ErpPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Reference ERP SOAP service (spyne)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--db", type=Path, default=Path("var/erp.sqlite3"))
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    peer = ErpPeer(args.host, args.port, args.db)
    print(f"reference ERP on {peer.url} (WSDL: {peer.url}?wsdl)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        peer.serve_forever()


if __name__ == "__main__":
    main()
