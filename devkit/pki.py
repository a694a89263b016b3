"""The project's test PKI (テスト用認証基盤): CAs, TSA, city signer and IC-card certificates.

Generated with ``cryptography`` into a run directory (default ``.run/pki``), created on
demand and idempotent: a second call loads what the first one wrote. Several processes may
call :func:`ensure_pki` at once; a file lock makes exactly one of them generate.

What it holds (RFC 5280 profiles):

- ``Hub Test Root CA`` and its issuing CA for contractor IC cards, ``Hub Test Card CA 1``.
- An unrelated second hierarchy, ``Other Test Root CA`` / ``Other Test Card CA 2``, for
  cards from a different certification authority (RNW-5).
- A TSA certificate with the critical extended key usage ``id-kp-timeStamping``
  (RFC 3161 §2.3), issued by the root.
- A city signer certificate (the municipality's own signer), issued by the root.
- :meth:`DevPki.issue_card` issues a card certificate for a holder name, holder address,
  serial number and validity period; the card is then identified by issuer DN + serial
  (REG-1).

Private keys exist only as files in the run directory (mode 0600); they are never printed
and never part of a repr.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_PKI_DIR",
    "CardAuthority",
    "CardCredentials",
    "DevPki",
    "Identity",
    "ensure_pki",
]

DEFAULT_PKI_DIR = Path(".run/pki")

CardAuthority = Literal["hub", "other"]
"""Which card CA issues a card: ``hub`` (Hub Test Card CA 1) or ``other`` (RNW-5)."""

_KEY_BITS = 2048
_CA_YEARS = 10
_LEAF_YEARS = 3


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key file in the run directory."""

    certificate: x509.Certificate
    key_path: Path = field(repr=False)
    cert_path: Path

    def private_key(self) -> rsa.RSAPrivateKey:
        """Load the private key from the run directory (never logged, never printed)."""
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{self.key_path.name}: not an RSA key")
        return key

    @property
    def cert_pem(self) -> bytes:
        """The certificate, PEM encoded."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        """The certificate, DER encoded (as stored on an IC card)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class CardCredentials(Identity):
    """An IC card's certificate and key, with the issuing CA chain up to its root."""

    chain: tuple[x509.Certificate, ...] = ()

    @property
    def issuer_dn(self) -> str:
        """Issuer DN in RFC 4514 form: with :attr:`serial`, the card's identity (REG-1)."""
        return self.certificate.issuer.rfc4514_string()

    @property
    def serial(self) -> int:
        """The certificate serial number."""
        return self.certificate.serial_number


@dataclass(frozen=True)
class DevPki:
    """The loaded test PKI; build it with :func:`ensure_pki`."""

    directory: Path
    root: Identity
    card_ca: Identity
    other_root: Identity
    other_card_ca: Identity
    tsa: Identity
    city_signer: Identity

    @property
    def trust_roots(self) -> tuple[x509.Certificate, ...]:
        """Roots the hub trusts for contractor, city and TSA signatures."""
        return (self.root.certificate, self.other_root.certificate)

    def issuing_ca(self, authority: CardAuthority) -> tuple[Identity, Identity]:
        """The (issuing CA, root) pair of a card authority."""
        if authority == "hub":
            return self.card_ca, self.root
        return self.other_card_ca, self.other_root

    def issue_card(
        self,
        holder_name: str,
        holder_address: str,
        serial: int,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        authority: CardAuthority = "hub",
    ) -> CardCredentials:
        """Issue an IC-card certificate (名義人, holder address, serial, validity).

        A fresh key pair is generated for each call; the files
        ``cards/<authority>-<serial>.{crt,key}`` are overwritten.
        """
        ca, root = self.issuing_ca(authority)
        start = not_before or _now() - dt.timedelta(days=1)
        end = not_after or start + dt.timedelta(days=365 * _LEAF_YEARS)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.STREET_ADDRESS, holder_address),
                x509.NameAttribute(NameOID.COMMON_NAME, holder_name),
            ]
        )
        key = _new_key()
        cert = (
            _builder(subject, ca, key, serial, (start, end))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=True), critical=True)
            .sign(ca.private_key(), hashes.SHA256())
        )
        cards = self.directory / "cards"
        cards.mkdir(exist_ok=True)
        stem = cards / f"{authority}-{serial}"
        _write_identity(stem, cert, key)
        return CardCredentials(
            certificate=cert,
            key_path=stem.with_suffix(".key"),
            cert_path=stem.with_suffix(".crt"),
            chain=(ca.certificate, root.certificate),
        )


def ensure_pki(directory: Path | str = DEFAULT_PKI_DIR) -> DevPki:
    """Create the test PKI in ``directory`` if missing, then load it."""
    path = Path(directory).resolve()
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if not (path / "city-signer.crt").exists():
            _generate(path)
        return DevPki(
            directory=path,
            root=_load(path / "root"),
            card_ca=_load(path / "card-ca"),
            other_root=_load(path / "other-root"),
            other_card_ca=_load(path / "other-card-ca"),
            tsa=_load(path / "tsa"),
            city_signer=_load(path / "city-signer"),
        )


def _generate(path: Path) -> None:
    # city-signer.crt is written last: its presence means the whole set is complete.
    root = _self_signed(path / "root", "Hub Test Root CA")
    _sub_ca(path / "card-ca", "Hub Test Card CA 1", root)
    other = _self_signed(path / "other-root", "Other Test Root CA")
    _sub_ca(path / "other-card-ca", "Other Test Card CA 2", other)
    _leaf(path / "tsa", "Hub Test TSA 1", root, tsa=True)
    _leaf(path / "city-signer", "Hub Test City Signer", root, tsa=False)


def _self_signed(stem: Path, cn: str) -> Identity:
    key = _new_key()
    name = _org_name(cn)
    start = _now() - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_identity(stem, cert, key)
    return _load(stem)


def _sub_ca(stem: Path, cn: str, issuer: Identity) -> Identity:
    key = _new_key()
    start = _now() - dt.timedelta(days=1)
    cert = (
        _builder(
            _org_name(cn),
            issuer,
            key,
            x509.random_serial_number(),
            (start, start + dt.timedelta(days=365 * _CA_YEARS)),
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .sign(issuer.private_key(), hashes.SHA256())
    )
    _write_identity(stem, cert, key)
    return _load(stem)


def _leaf(stem: Path, cn: str, issuer: Identity, *, tsa: bool) -> Identity:
    key = _new_key()
    start = _now() - dt.timedelta(days=1)
    builder = (
        _builder(
            _org_name(cn),
            issuer,
            key,
            x509.random_serial_number(),
            (start, start + dt.timedelta(days=365 * _CA_YEARS - 2)),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
    )
    if tsa:
        # RFC 3161 §2.3: the TSA certificate carries only id-kp-timeStamping, critical.
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    cert = builder.sign(issuer.private_key(), hashes.SHA256())
    _write_identity(stem, cert, key)
    return _load(stem)


def _builder(
    subject: x509.Name,
    issuer: Identity,
    key: rsa.RSAPrivateKey,
    serial: int,
    validity: tuple[dt.datetime, dt.datetime],
) -> x509.CertificateBuilder:
    start, end = validity
    issuer_ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=signing,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _org_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Procurement Hub Test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write_identity(stem: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
    key_path = stem.with_suffix(".key")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    stem.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(stem: Path) -> Identity:
    cert_path = stem.with_suffix(".crt")
    return Identity(
        certificate=x509.load_pem_x509_certificate(cert_path.read_bytes()),
        key_path=stem.with_suffix(".key"),
        cert_path=cert_path,
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with (path / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
