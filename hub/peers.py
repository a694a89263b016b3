"""The reference peers on loopback: the embedded default's outside world.

SMTP (aiosmtpd), the ERP's SOAP service (spyne, with its WSDL), D・Sure, the online
application system, CloudSign and an RFC 3161 TSA (``openssl ts``), each the
project's own reference implementation, each its own process. ``hub peers`` runs
them in the foreground; ``hub demo`` starts them around its sample case.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PEERS", "LocalPeers", "Peer"]


@dataclass(frozen=True)
class Peer:
    name: str
    module: str
    port: int
    args: tuple[str, ...] = ()


def _peers(run_dir: Path, pki_dir: Path) -> tuple[Peer, ...]:
    return (
        Peer("smtp", "connectors.mail.peer", 8025, ("--spool", str(run_dir / "mail"))),
        Peer("erp-soap", "connectors.erp.peer", 8090, ("--db", str(run_dir / "erp.sqlite3"))),
        Peer("dsure", "connectors.dsure.peer", 8781),
        Peer("online-application", "connectors.application.peer", 8782),
        Peer("cloudsign", "connectors.cloudsign.peer", 8783),
        Peer("tsa", "connectors.tsa.peer", 8318, ("--pki", str(pki_dir))),
    )


PEERS = _peers(Path(".run/peers"), Path(".run/pki"))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class LocalPeers:
    """The reference peers as child processes. ``pki_dir``: the project's test PKI that the
    TSA signs with, the same one the gateway trusts in the embedded default (a timestamp
    from another PKI would not validate); default: beside ``run_dir``."""

    def __init__(self, run_dir: Path, pki_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.peers = _peers(run_dir, pki_dir or run_dir.parent / "pki")
        self._procs: list[tuple[Peer, subprocess.Popen[bytes]]] = []

    def start(self, timeout_s: float = 60.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for peer in self.peers:
            if _port_open(peer.port):
                raise RuntimeError(f"port {peer.port} for the {peer.name} peer is taken; "
                                   "stop what listens there (another `hub peers`?)")
            log = (self.run_dir / f"{peer.name}.log").open("ab")
            cmd = [sys.executable, "-m", peer.module]
            if peer.module in ("connectors.mail.peer", "connectors.erp.peer",
                               "connectors.tsa.peer"):
                cmd += ["--port", str(peer.port)]
            proc = subprocess.Popen([*cmd, *peer.args], env=env, stdout=log,  # noqa: S603
                                    stderr=subprocess.STDOUT, cwd=root)
            self._procs.append((peer, proc))
        deadline = time.monotonic() + timeout_s
        for peer, proc in self._procs:
            while not _port_open(peer.port):
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"the {peer.name} peer exited; see "
                                       f"{self.run_dir / (peer.name + '.log')}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the {peer.name} peer is not listening on "
                                       f"127.0.0.1:{peer.port} after {timeout_s:.0f} s")
                time.sleep(0.1)

    def stop(self) -> None:
        for _, proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()

    def describe(self) -> list[str]:
        return [f"{p.name:<20} 127.0.0.1:{p.port}  ({p.module})" for p in self.peers]
