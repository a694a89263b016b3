"""The reference mail peer: a real SMTP server (aiosmtpd) on loopback.

Tests and the local default send to it through the real connector; it keeps
what it received (and, with a spool directory, writes each mail as an ``.eml``
file a person can open). For fault tests it can also defer (451), refuse (550)
or answer slowly; garbage and "down" need no help from it.

Run it alone: ``python -m connectors.mail.peer --port 8025 --spool var/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Behaviour", "ReceivedMail", "SmtpPeer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on just now (aiosmtpd cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class Behaviour(enum.StrEnum):
    ACCEPT = "accept"
    """250: the mail is stored."""
    DEFER = "defer"
    """451 at DATA: a temporary failure, the sender must retry."""
    REFUSE = "refuse"
    """550 at DATA: refused for good."""
    SLOW = "slow"
    """Waits ``delay_s`` before answering DATA, then stores the mail."""


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_RCPT(  # noqa: N802 -- aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.peer.unknown_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 -- aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        behaviour = self.peer.behaviour
        if behaviour is Behaviour.DEFER:
            return "451 4.3.0 Temporary failure, try again later"
        if behaviour is Behaviour.REFUSE:
            return "550 5.7.1 Message refused"
        if behaviour is Behaviour.SLOW:
            await asyncio.sleep(self.peer.delay_s)
        self.peer.store(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos),
                                     bytes(envelope.original_content or envelope.content)))
        return "250 2.0.0 OK: queued"


class SmtpPeer:
    """An aiosmtpd server on ``host:port`` in its own thread; a ReferencePeer."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 spool: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.spool = spool
        self.behaviour = Behaviour.ACCEPT
        self.delay_s = 0.0
        self.unknown_recipients: set[str] = set()
        self._received: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname=host, port=self.port,
                                      server_hostname="reference-peer.invalid")

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def store(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._received.append(mail)
            count = len(self._received)
        if self.spool is not None:
            self.spool.mkdir(parents=True, exist_ok=True)
            (self.spool / f"{time.strftime('%Y%m%d-%H%M%S')}-{count:06d}.eml").write_bytes(
                mail.content)

    @property
    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """The mails received, once there are at least ``count`` (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received


def main() -> None:
    parser = argparse.ArgumentParser(description="Reference SMTP peer of the mail connector")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--spool", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    peer = SmtpPeer(args.host, args.port, args.spool)
    peer.start()
    print(f"reference SMTP peer on {peer.url}, mails in {args.spool}/", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        peer.stop()


if __name__ == "__main__":
    main()
