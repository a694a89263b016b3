"""A card in software with the key of a test card (gateway tests that are not about the
card itself; the PC/SC and PKCS#11 tests use the real stacks)."""

from __future__ import annotations

from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from card_agent.card import PinStatus
from devkit.pki import CardCredentials

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


class SoftCard:
    """Signs digests with the card's key file; the PIN is always accepted."""

    def __init__(self, creds: CardCredentials) -> None:
        self.reader = f"soft-{creds.serial}"
        self.creds = creds
        # The test PKI's own key file: its RSA consistency check (~30 ms CPU a load) guards
        # against keys from elsewhere, and a real card never loads one at all (bench_cases).
        key = serialization.load_pem_private_key(creds.key_path.read_bytes(), password=None,
                                                 unsafe_skip_rsa_key_validation=True)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{creds.key_path.name}: not an RSA key")
        self._key = key

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
