"""A real WebDAV server on loopback (WsgiDAV over a directory), with fault knobs.

Tests and the local default (``python -m hub_connector_docmgmt.peer``) run it; it needs
the ``peers`` extra (wsgidav). Faults (:class:`connectors._shared.loopback.PeerFaults`):
slow, garbage (a 200 with junk for everything), an error status, announced maintenance
(503 with Retry-After), and ``requests`` counts the calls. ``created`` counts resources
created by a PUT (201), per path, so a test sees a redelivery write nothing new.
"""

from __future__ import annotations

import io
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from wsgidav.wsgidav_app import WsgiDAVApp

from connectors._shared.loopback import PeerFaults, free_port, serve_forever

__all__ = ["WebDavPeer"]

StartResponse = Callable[..., Any]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class WebDavPeer:
    def __init__(self, root: Path, *, username: str = "hub",
                 password: str = "local-docmgmt-password",  # noqa: S107 -- the local default
                 port: int | None = None) -> None:
        self.root = root
        self.faults = PeerFaults()
        self.created: Counter[str] = Counter()
        self.forbidden: set[str] = set()
        """Path prefixes where every write is refused with 403 (a permission missing)."""
        self._port = port or free_port()
        self._username, self._password = username, password
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def _app(self) -> Any:
        self.root.mkdir(parents=True, exist_ok=True)
        dav = WsgiDAVApp({
            "provider_mapping": {"/": str(self.root)},
            "simple_dc": {"user_mapping": {"*": {self._username: {"password": self._password}}}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False,
                                   "default_to_digest": False},
            "verbose": 0,
            "logging": {"enable": False},
            "lock_storage": True,
            "property_manager": True,
        })
        faults = self.faults

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            # wsgiref hands the socket itself as wsgi.input: a read past the body would wait
            # for the client, so the body is read here by its length.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length)
                                               if length else b"")
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
            method = environ["REQUEST_METHOD"]
            if method != "OPTIONS":
                faults.requests += 1
            until = faults.maintenance_until
            if until is not None and datetime.now(UTC) < until:
                wait = max(1, int((until - datetime.now(UTC)).total_seconds()))
                start_response("503 Service Unavailable", [("Retry-After", str(wait)),
                                                           ("Content-Type", "text/plain")])
                return [b"maintenance"]
            if faults.slow_s:
                time.sleep(faults.slow_s)
            if faults.garbage:
                start_response("200 OK", [("Content-Type", "application/xml")])
                return [b"<html><body>502 Bad Gateway</body></html>\x00\xff"]
            if faults.error_status is not None:
                start_response(f"{faults.error_status} Error", [("Content-Type", "text/plain")])
                return [b"error"]
            if method in ("PUT", "MKCOL") and any(path.startswith(p) for p in self.forbidden):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"forbidden"]

            def recording(status: str, headers: list[tuple[str, str]],
                          exc_info: Any = None) -> Any:
                if method == "PUT" and status.startswith("201"):
                    self.created[path] += 1
                return start_response(status, headers, exc_info)

            result: Iterable[bytes] = dav(environ, recording)
            return result

        return app

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = make_server("127.0.0.1", self._port, self._app(),
                                   server_class=_ThreadingServer, handler_class=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"webdav:{self._port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None


if __name__ == "__main__":
    from hub_connector_docmgmt.settings import DocmgmtSettings, run_dir

    settings = DocmgmtSettings()
    port = int(settings.base_url.rsplit(":", 1)[1].split("/")[0])
    serve_forever(WebDavPeer(run_dir() / "docmgmt", username=settings.username,
                             password=settings.password.get_secret_value(), port=port))
