"""A card in software with the key of a test card (gateway tests that are not about the
card itself; the PC/SC and PKCS#11 tests use the real stacks)."""

from __future__ import annotations

from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from card_agent.card import PinStatus
from connectors.devpki import CardCredentials

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


class SoftCard:
    """Signs digests with the card's key file; the PIN is always accepted."""

    def __init__(self, creds: CardCredentials) -> None:
        self.reader = f"soft-{creds.serial}"
        self.creds = creds
        self._key = creds.private_key()

    def certificate(self) -> x509.Certificate:
        return self.creds.certificate

    def pin_status(self) -> PinStatus:
        return PinStatus(verified=True, retries_left=3, locked=False)

    def verify_pin(self, pin: str) -> None:
        return None

    def sign_digest(self, digest: bytes, algorithm: str) -> bytes:
        return self._key.sign(digest, padding.PKCS1v15(),
                              utils.Prehashed(_HASHES[algorithm]))

    def close(self) -> None:
        return None

    def __enter__(self) -> SoftCard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
