"""The virtual card's applet (ISO 7816-4/-8) and the agent's DigestInfo, without PC/SC:
the retry counter (63Cx, then 6983), security status, and a signature that verifies."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from card_agent.card import digest_info
from card_agent.virtualcard import AID, CERT_EF, CardApplet
from devkit.pki import CardCredentials
from tests.card.pki import shared_pki


@pytest.fixture(scope="module")
def creds() -> CardCredentials:
    return shared_pki().issue_card("山田 太郎", "埼玉県", 5001)


@pytest.fixture
def applet(creds: CardCredentials) -> CardApplet:
    card = CardApplet(creds.cert_der, creds.private_key(), b"1234")
    assert card.process(bytes([0, 0xA4, 4, 0, len(AID)]) + AID) == b"\x90\x00"
    return card


def _verify(pin: bytes) -> bytes:
    return bytes([0, 0x20, 0, 0x81, len(pin)]) + pin


def test_retry_counter_counts_down_then_blocks(applet: CardApplet) -> None:
    assert applet.process(bytes([0, 0x20, 0, 0x81])) == b"\x63\xc3"
    assert applet.process(_verify(b"0000")) == b"\x63\xc2"
    assert applet.process(_verify(b"0000")) == b"\x63\xc1"
    assert applet.process(_verify(b"0000")) == b"\x63\xc0"
    assert applet.process(_verify(b"1234")) == b"\x69\x83"
    assert applet.process(bytes([0, 0x2A, 0x9E, 0x9A, 1, 0])) == b"\x69\x83"


def test_signature_needs_the_pin_and_verifies(applet: CardApplet, creds: CardCredentials) -> None:
    info = digest_info(hashlib.sha256(b"doc").digest(), "sha256")
    pso = bytes([0, 0x2A, 0x9E, 0x9A, len(info)]) + info + b"\x00"
    assert applet.process(pso) == b"\x69\x82"
    assert applet.process(_verify(b"1234")) == b"\x90\x00"
    answer = applet.process(pso)
    assert answer[-2:] == b"\x90\x00"
    public = creds.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(answer[:-2], b"doc", padding.PKCS1v15(), hashes.SHA256())
    applet.power_off()
    assert applet.process(pso) == b"\x69\x82"  # power-off forgets the PIN


def test_certificate_is_read_in_chunks(applet: CardApplet, creds: CardCredentials) -> None:
    assert applet.process(bytes([0, 0xA4, 2, 0x0C, 2]) + CERT_EF) == b"\x90\x00"
    out = b""
    while True:
        chunk = applet.process(bytes([0, 0xB0, len(out) >> 8, len(out) & 0xFF, 0]))
        out += chunk[:-2]
        if chunk[-2:] != b"\x90\x00":
            break
    assert out == creds.cert_der


def test_digest_info_rejects_a_wrong_length() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        digest_info(b"\0" * 20, "sha256")
