"""The project's virtual IC card: a process that plugs into vsmartcard's vpcd reader.

It is the contractor's card in the local default (``hub demo``) and in the tests: the
agent talks to it through the real PC/SC stack (pcscd, vpcd's reader), exactly as to a
card in a real reader. It is a development tool; a contractor uses the IC card an
accredited certification authority issued.

vpcd (Debian vsmartcard-vpcd, loaded by pcscd) listens on 127.0.0.1:35963 for the card
side of "Virtual PCD 00 00". Each message is a 2-byte big-endian length and a payload;
a 1-byte payload is a control (0 power off, 1 power on, 2 reset, 4 send the ATR), anything
else an APDU answered with its response. Debian's own vicc does not run on Python 3.

The card applet (ISO 7816-4/-8, short APDUs) holds a key and certificate from the test
PKI and a real PIN retry counter:

- SELECT by AID ``F0 48 55 42 43 41 52 44`` and the certificate EF ``00 11``
- READ BINARY of the certificate (DER)
- VERIFY ``P2=81``: empty data asks the status; ``63Cx`` x retries left, ``6983`` locked
- PSO: COMPUTE DIGITAL SIGNATURE (``00 2A 9E 9A``): a DigestInfo in, an RSA PKCS#1 v1.5
  signature out (``6982`` unless the PIN was verified since power-on)

The owner controls the process through a pipe: ``remove``, ``insert``, ``remove_on_sign``
(pull the card as soon as the next signature command arrives), ``stop``.
"""

from __future__ import annotations

import hmac
import multiprocessing
import multiprocessing.connection
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from smartcard import scard

__all__ = ["AID", "CERT_EF", "READER", "CardApplet", "VirtualCard", "seat", "wait_reader"]

AID = bytes.fromhex("F048554243415244")
CERT_EF = b"\x00\x11"
ATR = bytes.fromhex("3B80800101")
VPCD_PORT = 35963
READER = "Virtual PCD 00 00"
"""vpcd's reader as pcscd names it."""

SW_OK = b"\x90\x00"
SW_EOF = b"\x62\x82"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY = b"\x69\x82"
SW_BLOCKED = b"\x69\x83"
SW_NO_EF = b"\x69\x86"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"


@dataclass
class CardApplet:
    """The card's logic: pure, one APDU in, one response out."""

    certificate_der: bytes
    key: rsa.RSAPrivateKey
    pin: bytes = field(repr=False)
    retries: int = 3
    max_retries: int = 3
    verified: bool = False
    selected_app: bool = False
    selected_ef: bytes | None = None

    def power_off(self) -> None:
        """Power-off or reset: the security status is lost, the retry counter is not."""
        self.verified = False
        self.selected_app = False
        self.selected_ef = None

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data, le = b"", None
        if len(body) == 1:
            le = body[0] or 256
        elif len(body) > 1:
            lc = body[0]
            data = body[1 : 1 + lc]
            if len(data) != lc:
                return SW_WRONG_LENGTH
            rest = body[1 + lc :]
            le = (rest[0] or 256) if rest else None
        if cla != 0x00:
            return SW_CLA
        handlers = {0xA4: self._select, 0xB0: self._read, 0x20: self._verify, 0x2A: self._pso}
        handler = handlers.get(ins)
        return handler(p1, p2, data, le) if handler else SW_INS

    def _select(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 == 0x04:
            self.selected_app = data == AID
            self.selected_ef = None
            return SW_OK if self.selected_app else SW_NOT_FOUND
        if p1 in (0x00, 0x02) and self.selected_app and data == CERT_EF:
            self.selected_ef = data
            return SW_OK
        return SW_NOT_FOUND

    def _read(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if self.selected_ef != CERT_EF:
            return SW_NO_EF
        offset = (p1 & 0x7F) << 8 | p2
        if offset > len(self.certificate_der):
            return SW_WRONG_P1P2
        chunk = self.certificate_der[offset : offset + (le or 256)]
        return chunk + (SW_OK if len(chunk) == (le or 256) else SW_EOF)

    def _verify(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p2 != 0x81 or not self.selected_app:
            return SW_NOT_FOUND
        if self.retries == 0:
            return SW_BLOCKED
        if not data:
            return SW_OK if self.verified else bytes([0x63, 0xC0 | self.retries])
        if hmac.compare_digest(data, self.pin):
            self.retries = self.max_retries
            self.verified = True
            return SW_OK
        self.retries -= 1
        self.verified = False
        return bytes([0x63, 0xC0 | self.retries])

    def _pso(self, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if (p1, p2) != (0x9E, 0x9A):
            return SW_WRONG_P1P2
        if self.retries == 0:
            return SW_BLOCKED
        if not self.verified:
            return SW_SECURITY
        return self._rsa_pkcs1(data) + SW_OK

    def _rsa_pkcs1(self, digest_info: bytes) -> bytes:
        # The card pads and exponentiates itself (PKCS#1 v1.5, RFC 8017 §9.2), as a real
        # card's PSO does with the DigestInfo it is given.
        k = self.key.private_numbers()
        size = (self.key.key_size + 7) // 8
        padded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
        m = int.from_bytes(padded, "big")
        # Chinese remainder theorem (RFC 8017 §5.1.2): what cards do, four times faster.
        s1, s2 = pow(m, k.dmp1, k.p), pow(m, k.dmq1, k.q)
        value = s2 + (k.iqmp * (s1 - s2) % k.p) * k.q
        return value.to_bytes(size, "big")


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    buf = b""
    while len(buf) < count:
        chunk = sock.recv(count - len(buf))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        # vpcd writes the length and the payload separately: with Nagle on its side and
        # a delayed ACK on ours every APDU would wait 40 ms, so acknowledge at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        buf += chunk
    return buf


def _connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _serve(applet: CardApplet, port: int, control: multiprocessing.connection.Connection) -> None:
    sock: socket.socket | None = _connect(port)
    remove_on_sign = False
    control.send("inserted")
    while True:
        waiting: list[socket.socket | multiprocessing.connection.Connection] = (
            [control, sock] if sock else [control])
        ready, _, _ = select.select(waiting, [], [])
        if control in ready:
            command = control.recv()
            if command == "stop":
                break
            if command == "remove" and sock is not None:
                sock.close()
                sock = None
                applet.power_off()
            elif command == "insert" and sock is None:
                sock = _connect(port)
            elif command == "remove_on_sign":
                remove_on_sign = True
            elif command == "retries":
                control.send(applet.retries)
                continue
            control.send(command)
            continue
        assert sock is not None
        try:
            (length,) = struct.unpack(">H", _recv_exact(sock, 2))
            message = _recv_exact(sock, length)
        except (ConnectionError, OSError):
            sock.close()
            sock = None
            applet.power_off()
            continue
        if length == 1:
            if message[0] == 4:
                sock.sendall(struct.pack(">H", len(ATR)) + ATR)
            elif message[0] in (0, 2):
                applet.power_off()
            continue
        if remove_on_sign and message[1:2] == b"\x2a":
            sock.close()
            sock = None
            applet.power_off()
            remove_on_sign = False
            control.send("pulled")
            continue
        response = applet.process(message)
        sock.sendall(struct.pack(">H", len(response)) + response)
    if sock is not None:
        sock.close()


def _main(cert_der: bytes, key_path: str, pin: bytes, port: int,
          control: multiprocessing.connection.Connection) -> None:
    key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    _serve(CardApplet(cert_der, key, pin), port, control)


class VirtualCard:
    """A virtual card in its own process, inserted into vpcd's reader on start."""

    def __init__(self, certificate_der: bytes, key_path: Path, pin: str,
                 port: int = VPCD_PORT) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._control, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_main, args=(certificate_der, str(key_path), pin.encode(), port, child),
            daemon=True,
        )
        self.pulled = False

    def _ask(self, command: str, expect: str | None = None) -> object:
        self._control.send(command)
        answer: object = "pulled"
        while answer == "pulled":
            if not self._control.poll(10):
                raise TimeoutError(f"virtual card did not answer {command!r}")
            answer = self._control.recv()
            self.pulled = self.pulled or answer == "pulled"
        if expect is not None and answer != expect:
            raise AssertionError(f"virtual card answered {answer!r} to {command!r}")
        return answer

    def start(self) -> VirtualCard:
        self._process.start()
        if not self._control.poll(15) or self._control.recv() != "inserted":
            raise TimeoutError("virtual card could not reach vpcd on 127.0.0.1:35963")
        return self

    def remove(self) -> None:
        self._ask("remove", "remove")

    def insert(self) -> None:
        self._ask("insert", "insert")

    def remove_on_sign(self) -> None:
        self._ask("remove_on_sign", "remove_on_sign")

    def wait_pulled(self, timeout: float = 10) -> bool:
        """True once the card was pulled by ``remove_on_sign``."""
        if not self.pulled and self._control.poll(timeout):
            self.pulled = self._control.recv() == "pulled"
        return self.pulled

    @property
    def retries(self) -> int:
        answer = self._ask("retries")
        assert isinstance(answer, int)
        return answer

    def stop(self) -> None:
        if self._process.is_alive():
            self._control.send("stop")
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def _context() -> int:
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv != scard.SCARD_S_SUCCESS:
        raise RuntimeError("PC/SC context not available: is pcscd running? "
                           "(bash deploy/services.d/pcscd.sh start)")
    return int(context)


def wait_reader(present: bool, timeout: float = 5.0) -> None:
    """Wait until pcscd reports the card in vpcd's reader present (or gone).

    A card pulled out is noticed by pcscd before the next one goes in, as a person
    would wait; a card inserted before pcscd saw the removal is not powered up.
    """
    context = _context()
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rv, states = scard.SCardGetStatusChange(context, 200, [(READER, state)])
            if rv == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if bool(state & scard.SCARD_STATE_PRESENT) == present:
                    return
        raise TimeoutError(f"{READER}: card {'not inserted' if present else 'not removed'}")
    finally:
        scard.SCardReleaseContext(context)


def seat(card: VirtualCard, attempts: int = 4) -> VirtualCard:
    """Make sure pcscd powered the card up; re-seat it when pcscd missed the insertion.

    Right after a card was pulled mid-command, pcscd can miss a card inserted within
    about a second (it is still recovering the slot); taking the card out and in again
    is what a person would do.
    """
    for _ in range(attempts):
        try:
            wait_reader(present=True, timeout=1.5)
            return card
        except TimeoutError:
            card.remove()
            time.sleep(0.3)
            card.insert()
    wait_reader(present=True)
    return card
