"""PC/SC card backend through pyscard: ISO 7816-4/-8 APDUs to the card's signing applet.

SELECT (by AID, then the certificate EF), READ BINARY of the DER certificate, VERIFY
(``P2=81``; empty data asks the retries left: ``63Cx``, ``6983`` blocked), PSO: COMPUTE
DIGITAL SIGNATURE (``00 2A 9E 9A``) over a DigestInfo. The PIN goes to the card in the
VERIFY APDU and nowhere else; the APDU trace is never logged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from cryptography import x509
from smartcard import scard
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.System import readers as pcsc_readers

from card_agent.card import PinStatus, digest_info
from card_agent.errors import (
    CardLockedError,
    CardProtocolError,
    CardRemovedError,
    NoCardError,
    WrongPinError,
)

__all__ = ["CERT_EF", "DEFAULT_AID", "PcscBackend", "PcscSession", "watch"]

DEFAULT_AID = bytes.fromhex("F048554243415244")
CERT_EF = b"\x00\x11"
PIN_REF = 0x81
_OK = 0x9000


class PcscSession:
    """An open card in one PC/SC reader."""

    def __init__(self, reader: Any, aid: bytes = DEFAULT_AID, ready_s: float = 3.0) -> None:
        self.reader = str(reader)
        self._conn = reader.createConnection()
        # A card just inserted is still being powered up by pcscd: give it a moment.
        deadline = time.monotonic() + ready_s
        while True:
            try:
                self._conn.connect()
                break
            except (NoCardException, CardConnectionException) as exc:
                if time.monotonic() >= deadline:
                    raise NoCardError(self.reader) from exc
                time.sleep(0.1)
        self._cert: x509.Certificate | None = None
        self._select_app(aid)

    def _transmit(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            data, sw1, sw2 = self._conn.transmit(list(apdu))
        except (CardConnectionException, NoCardException, BaseSCardException) as exc:
            raise CardRemovedError() from exc
        return bytes(data), sw1 << 8 | sw2

    def _select_app(self, aid: bytes) -> None:
        _, sw = self._transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid)
        if sw != _OK:
            raise CardProtocolError("SELECT (application)", sw)

    def certificate(self) -> x509.Certificate:
        if self._cert is None:
            _, sw = self._transmit(bytes([0x00, 0xA4, 0x02, 0x0C, 2]) + CERT_EF)
            if sw != _OK:
                raise CardProtocolError("SELECT (certificate)", sw)
            self._cert = x509.load_der_x509_certificate(self._read_der())
        return self._cert

    def _read_der(self) -> bytes:
        head = self._read(0, 4)
        # A DER SEQUENCE with a long-form length (certificates are >255 bytes).
        if head[0] != 0x30 or head[1] & 0x80 == 0:
            raise CardProtocolError("READ BINARY (certificate format)", 0x6F00)
        size_len = head[1] & 0x7F
        head = self._read(0, 2 + size_len)
        total = 2 + size_len + int.from_bytes(head[2 : 2 + size_len], "big")
        out = b""
        while len(out) < total:
            out += self._read(len(out), min(256, total - len(out)))
        return out

    def _read(self, offset: int, length: int) -> bytes:
        data, sw = self._transmit(
            bytes([0x00, 0xB0, offset >> 8 & 0x7F, offset & 0xFF, length & 0xFF])
        )
        if sw not in (_OK, 0x6282) or not data:
            raise CardProtocolError("READ BINARY", sw)
        return data

    def pin_status(self) -> PinStatus:
        _, sw = self._transmit(bytes([0x00, 0x20, 0x00, PIN_REF]))
        if sw == _OK:
            return PinStatus(verified=True, retries_left=None, locked=False)
        if sw in (0x6983, 0x63C0):
            return PinStatus(verified=False, retries_left=0, locked=True)
        if sw & 0xFFF0 == 0x63C0:
            return PinStatus(verified=False, retries_left=sw & 0x0F, locked=False)
        raise CardProtocolError("VERIFY (status)", sw)

    def verify_pin(self, pin: str) -> None:
        # Checked before encoding: a codec error would quote the PIN's characters.
        if not (pin.isascii() and 4 <= len(pin) <= 16):
            raise ValueError("a PIN has 4 to 16 half-width characters")
        secret = pin.encode("ascii")
        _, sw = self._transmit(bytes([0x00, 0x20, 0x00, PIN_REF, len(secret)]) + secret)
        if sw == _OK:
            return
        if sw in (0x6983, 0x63C0):
            raise CardLockedError()
        if sw & 0xFFF0 == 0x63C0:
            raise WrongPinError(sw & 0x0F)
        raise CardProtocolError("VERIFY", sw)

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        info = digest_info(digest, algorithm)
        data, sw = self._transmit(bytes([0x00, 0x2A, 0x9E, 0x9A, len(info)]) + info + b"\x00")
        if sw == 0x6983:
            raise CardLockedError()
        if sw != _OK:
            raise CardProtocolError("PSO: COMPUTE DIGITAL SIGNATURE", sw)
        return data

    def close(self) -> None:
        # A card already pulled out has nothing left to release.
        with contextlib.suppress(CardConnectionException, BaseSCardException):
            self._conn.disconnect()

    def __enter__(self) -> PcscSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class PcscBackend:
    """Cards in the PC/SC readers of this PC (pcscd on Linux)."""

    def __init__(self, aid: bytes = DEFAULT_AID) -> None:
        self.aid = aid

    def _readers(self) -> list[Any]:
        try:
            return list(pcsc_readers())
        except BaseSCardException as exc:
            raise NoCardError("PC/SC service not available") from exc

    def readers(self) -> Sequence[str]:
        return [str(r) for r in self._readers()]

    def open(self, reader: str | None = None) -> PcscSession:
        found = self._readers()
        if reader is not None:
            found = [r for r in found if str(r) == reader]
            if not found:
                raise NoCardError(f"reader {reader!r} not found")
            return PcscSession(found[0], self.aid)
        for candidate in found:
            try:
                return PcscSession(candidate, self.aid, ready_s=0.0)
            except (NoCardError, CardProtocolError):
                continue
        raise NoCardError("no reader holds a supported card")


def watch(on_change: Callable[[str, str], None], poll_ms: int = 500) -> Callable[[], None]:
    """Call ``on_change(event, reader)`` on every card insert/remove ("inserted" for a
    card present at the start too); returns a function that stops watching.

    A thread blocks in SCardGetStatusChange (PC/SC part 5) so changes arrive at once.
    """
    stop = threading.Event()

    def run() -> None:
        rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if rv != scard.SCARD_S_SUCCESS:
            return
        known: dict[str, int] = {}
        try:
            while not stop.is_set():
                rv, names = scard.SCardListReaders(context, [])
                if rv != scard.SCARD_S_SUCCESS or not names:
                    stop.wait(poll_ms / 1000)
                    continue
                query = [(n, known.get(n, scard.SCARD_STATE_UNAWARE)) for n in names]
                rv, states = scard.SCardGetStatusChange(context, poll_ms, query)
                if rv != scard.SCARD_S_SUCCESS:
                    continue
                for name, state, _atr in states:
                    was = bool(known.get(name, 0) & scard.SCARD_STATE_PRESENT)
                    now = bool(state & scard.SCARD_STATE_PRESENT)
                    known[name] = state & ~scard.SCARD_STATE_CHANGED
                    if now != was:
                        on_change("inserted" if now else "removed", name)
        finally:
            scard.SCardReleaseContext(context)

    thread = threading.Thread(target=run, name="card-watch", daemon=True)
    thread.start()

    def stop_watching() -> None:
        stop.set()
        thread.join(poll_ms / 1000 + 2)

    return stop_watching
