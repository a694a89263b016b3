"""The card agent's PKCS#11 backend against SoftHSM2: certificate, PIN, signature, PAdES.

SoftHSM2 has no PIN lockout, so PIN-1's countdown and lock are tested through the real
PC/SC stack (test_card_pcsc.py); here a wrong PIN is refused with PIN-1 and no guess of
the retries left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from card_agent.errors import NoCardError, WrongPinError
from card_agent.pkcs11_backend import Pkcs11Backend
from card_agent.signing import sign_pdf
from connectors.tsa import TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki
from hub.gateway.validation import validate_signed_pdf
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.card.softhsm import make_token, softhsm_module
from tests.support.outside_validators import assert_outside_agrees

pytestmark = pytest.mark.softhsm

PIN = "246810"
LABEL = "hub-card-8001"


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def creds(pki: DevPki) -> CardCredentials:
    return pki.issue_card("佐藤 花子", "埼玉県川越市元町1-3-1", 8001)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, creds: CardCredentials) -> Pkcs11Backend:
    if softhsm_module() is None:
        pytest.fail("SoftHSM2 missing: run `bash deploy/setup.d/20-card.sh` (test.sh does)")
    module = make_token(Path(tmp_path_factory.mktemp("softhsm")), creds, LABEL, PIN)
    return Pkcs11Backend(module)


@pytest.fixture(scope="module")
def tsa(pki: DevPki) -> Iterator[TsaConnector]:
    with ReferenceTsa(pki) as server:
        yield TsaConnector(TsaSettings(url=server.url), pki.trust_roots)


def test_token_certificate_and_signature(backend: Pkcs11Backend, creds: CardCredentials) -> None:
    assert LABEL in backend.readers()
    with backend.open(LABEL) as card:
        assert card.certificate() == creds.certificate
        assert not card.pin_status().verified
        card.verify_pin(PIN)
        assert card.pin_status().verified
        digest = hashlib.sha256(b"contract").digest()
        signature = card.sign_digest(digest, "sha256")
    public = creds.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"contract", padding.PKCS1v15(), hashes.SHA256())


def test_wrong_pin_is_refused_with_pin_1(backend: Pkcs11Backend) -> None:
    with backend.open(LABEL) as card:
        with pytest.raises(WrongPinError) as wrong:
            card.verify_pin("000000")
        assert wrong.value.violation.rule_id == "PIN-1"
        assert wrong.value.retries_left is None
        assert "000000" not in str(wrong.value)
        assert not card.pin_status().verified


def test_unknown_token_is_no_card(backend: Pkcs11Backend) -> None:
    with pytest.raises(NoCardError):
        backend.open("no-such-token")


def test_pades_bt_through_pkcs11_validates(
    backend: Pkcs11Backend, creds: CardCredentials, tsa: TsaConnector, pki: DevPki
) -> None:
    with backend.open(LABEL) as card:
        card.verify_pin(PIN)
        signed = sign_pdf(make_pdf(), card, tsa.timestamper(), chain=creds.chain)
    result = validate_signed_pdf(signed, pki.trust_roots, creds.issuer_dn, creds.serial)
    assert result.signer_serial == 8001
    # poppler's pdfsig and openssl ts agree: valid, trusted, timestamp verified
    assert_outside_agrees(signed, pki.trust_roots, hub_accepts=True, signatures=1)
