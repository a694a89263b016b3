"""The test PKI: hierarchy, profiles (RFC 5280, RFC 3161 §2.3), idempotence, key hygiene."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devkit.pki import DevPki, ensure_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


def _verify(child: x509.Certificate, issuer: x509.Certificate) -> None:
    child.verify_directly_issued_by(issuer)


def test_hierarchy_chains_to_roots(pki: DevPki) -> None:
    _verify(pki.card_ca.certificate, pki.root.certificate)
    _verify(pki.tsa.certificate, pki.root.certificate)
    _verify(pki.city_signer.certificate, pki.root.certificate)
    _verify(pki.other_card_ca.certificate, pki.other_root.certificate)
    with pytest.raises(ValueError, match=r"[Ii]ssuer"):
        _verify(pki.other_card_ca.certificate, pki.root.certificate)
    names = {
        c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        for c in (pki.card_ca.certificate, pki.other_card_ca.certificate)
    }
    assert names == {"Hub Test Card CA 1", "Other Test Card CA 2"}


def test_tsa_has_critical_timestamping_eku(pki: DevPki) -> None:
    eku = pki.tsa.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def test_second_call_loads_the_same_pki(pki: DevPki) -> None:
    again = ensure_pki(pki.directory)
    assert again.root.certificate == pki.root.certificate
    assert again.tsa.certificate == pki.tsa.certificate


def test_issue_card_carries_holder_serial_and_validity(pki: DevPki) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    card = pki.issue_card(
        "山田 太郎", "埼玉県さいたま市浦和区高砂3-15-1", 4711, not_before=start, not_after=end
    )
    cert = card.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "山田 太郎"
    street = cert.subject.get_attributes_for_oid(NameOID.STREET_ADDRESS)[0].value
    assert street == "埼玉県さいたま市浦和区高砂3-15-1"
    assert card.serial == 4711
    assert "Hub Test Card CA 1" in card.issuer_dn
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)
    _verify(cert, pki.card_ca.certificate)
    assert card.chain == (pki.card_ca.certificate, pki.root.certificate)
    # The key on disk is the card's key: it signs what the certificate verifies.
    sig = card.private_key().sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    public = cert.public_key()
    assert hasattr(public, "verify")
    public.verify(sig, b"x", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]


def test_other_authority_issues_from_the_unrelated_ca(pki: DevPki) -> None:
    card = pki.issue_card("山田 太郎", "東京都千代田区1-1", 99, authority="other")
    _verify(card.certificate, pki.other_card_ca.certificate)
    assert "Other Test Card CA 2" in card.issuer_dn


def test_private_keys_are_owner_only_and_not_in_repr(pki: DevPki) -> None:
    for key in Path(pki.directory).rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "key_path" not in repr(pki.tsa)
    assert "PRIVATE" not in repr(pki)
