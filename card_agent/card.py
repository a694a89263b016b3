"""One interface for the IC card, whatever the backend (PC/SC or PKCS#11).

A backend lists its readers (or tokens) and opens a :class:`CardSession` on one. The
session reads the certificate, reports and verifies the PIN (PIN-1: never stored, never
retried automatically) and signs a digest with the card's key, which never leaves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from cryptography import x509

__all__ = ["DIGEST_INFO_PREFIX", "CardBackend", "CardSession", "PinStatus", "digest_info"]

# DER prefixes of DigestInfo (RFC 8017 §9.2, note 1): the card signs DigestInfo.
DIGEST_INFO_PREFIX = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def digest_info(digest: bytes, algorithm: str) -> bytes:
    """The DER DigestInfo of ``digest`` for an RSA PKCS#1 v1.5 signature."""
    prefix = DIGEST_INFO_PREFIX.get(algorithm)
    if prefix is None or len(digest) != prefix[-1]:
        raise ValueError(f"unsupported digest for card signing: {algorithm}")
    return prefix + digest


@dataclass(frozen=True)
class PinStatus:
    """What the card says of its PIN: verified in this session, retries left (None:
    the backend cannot tell), locked."""

    verified: bool
    retries_left: int | None
    locked: bool


class CardSession(Protocol):
    """An open card. Close it (or use ``with``) to end the session."""

    reader: str

    def certificate(self) -> x509.Certificate:
        """The signing certificate stored on the card."""

    def pin_status(self) -> PinStatus:
        """Ask the card, without spending a try."""

    def verify_pin(self, pin: str) -> None:
        """Present the PIN once. Raises WrongPinError or CardLockedError (PIN-1)."""

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        """RSA PKCS#1 v1.5 signature of ``digest`` by the card's key (after verify_pin)."""

    def close(self) -> None:
        """End the session; the card forgets the verified PIN."""

    def __enter__(self) -> CardSession: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class CardBackend(Protocol):
    """Where the cards are: PC/SC readers or PKCS#11 tokens."""

    def readers(self) -> Sequence[str]:
        """Names of the readers (PC/SC) or token labels (PKCS#11) present now."""

    def open(self, reader: str | None = None) -> CardSession:
        """Open the card in ``reader`` (the first with a card when None)."""
