"""The reference TSA: OpenSSL's ``ts -reply`` (RFC 3161) behind a small HTTP server.

Signs with the test PKI's TSA certificate (:mod:`devkit.pki`). It is a real
RFC 3161 implementation, used by the tests and for local runs::

    python -m connectors.tsa.peer --port 8318 --pki .run/pki

Requests are answered one at a time: OpenSSL keeps the token serial in a file.
``requests_served`` counts the tokens issued, so tests can see that no request went out
inside a maintenance window (WIN-3).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from asn1crypto import tsp

from devkit.pki import DEFAULT_PKI_DIR, DevPki, ensure_pki

__all__ = ["ReferenceTsa", "main"]

_POLICY = "1.3.6.1.4.1.55555.3161.1"
_MAX_QUERY = 64 * 1024

_CONFIG = """\
[ tsa ]
default_tsa = hub_tsa

[ hub_tsa ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = {cert}
certs = {chain}
signer_key = {key}
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class ReferenceTsa:
    """An RFC 3161 server on ``127.0.0.1:port`` (0: a free port), in a thread."""

    def __init__(self, pki: DevPki, port: int = 0, host: str = "127.0.0.1") -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("the reference TSA needs openssl (apt-get install openssl)")
        self._openssl = openssl
        self._workdir = Path(tempfile.mkdtemp(prefix="hub-tsa-"))
        (self._workdir / "serial").write_text("01\n")
        self._config = self._workdir / "tsa.cnf"
        self._config.write_text(
            _CONFIG.format(
                dir=self._workdir,
                cert=pki.tsa.cert_path,
                chain=pki.root.cert_path,
                key=pki.tsa.key_path,
                policy=_POLICY,
            )
        )
        self._lock = threading.Lock()
        self.requests_served = 0
        self.fail_next = 0
        self.wrong_nonce = False
        """Answer with another nonce than asked (to test the client's nonce check)."""
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def reply(self, query: bytes) -> bytes:
        """One RFC 3161 answer (a TimeStampResp, DER) to one query, from OpenSSL."""
        with self._lock:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [self._openssl, "ts", "-reply", "-config", str(self._config), "-section",
                 "hub_tsa", "-queryfile", "/dev/stdin", "-out", "/dev/stdout"],
                input=query, capture_output=True, check=False, timeout=10,
            )
            if result.returncode != 0 or not result.stdout:
                raise ValueError("openssl ts could not answer the query")
            self.requests_served += 1
            return result.stdout

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415, "expected application/timestamp-query")
                    return
                if not 0 < length <= _MAX_QUERY:
                    self.send_error(400, "bad query length")
                    return
                if tsa.fail_next > 0:
                    tsa.fail_next -= 1
                    self.send_error(503, "reference TSA told to fail")
                    return
                query = self.rfile.read(length)
                if tsa.wrong_nonce:
                    query = _other_nonce(query)
                try:
                    body = tsa.reply(query)
                except ValueError:
                    self.send_error(400, "not a timestamp query")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: tests and benchmarks would drown in access lines."""

        return Handler

    def start(self) -> ReferenceTsa:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ReferenceTsa:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _other_nonce(query: bytes) -> bytes:
    request = tsp.TimeStampReq.load(query)
    fields = {k: request[k] for k in ("version", "message_imprint", "cert_req")}
    fields["nonce"] = (request["nonce"].native or 0) + 1
    tampered: bytes = tsp.TimeStampReq(fields).dump()
    return tampered


def main(argv: list[str] | None = None) -> None:
    """Run the reference TSA in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Reference RFC 3161 TSA (OpenSSL ts)")
    parser.add_argument("--port", type=int, default=8318)
    parser.add_argument("--pki", type=Path, default=DEFAULT_PKI_DIR)
    args = parser.parse_args(argv)
    tsa = ReferenceTsa(ensure_pki(args.pki), port=args.port).start()
    print(f"reference TSA at {tsa.url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        tsa.stop()


if __name__ == "__main__":
    main()
