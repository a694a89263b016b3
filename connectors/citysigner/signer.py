"""The city's PAdES B-LT signature through PKCS#11 (ETSI EN 319 142-1, RFC 3161 timestamp).

pyHanko's :class:`~pyhanko.sign.pkcs11.PKCS11Signer` makes the raw signature in the
token, so the key never leaves it; the signature timestamp comes from the hub's TSA
connector; the certificates of the signer, its chain and the TSA go into the
document security store with what revocation data the trust context yields, which
turns B-T into B-LT. The signature is added as an incremental update: the contractor's
earlier signature stays intact (CON-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pkcs11.exceptions as p11e
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import ValidationContext

from connectors.citysigner.settings import CitySignerSettings

__all__ = ["CitySignatureResult", "CitySigner", "CitySignerError", "load_pem_files"]

_MD = "sha256"
_RESERVED = 16_384
"""Hex digits kept in the PDF for the CMS signature (8 KiB; the city's signature with its
chain and the RFC 3161 token is ~4.3 KiB with the test PKI). A fixed size spares pyHanko's
size estimate, which is a complete dry-run CMS signature (docs/performance.md). A CMS that
does not fit is made again with the estimate (:meth:`CitySigner.sign`)."""
_TOO_LARGE = "payload larger than expected"


class CitySignerError(RuntimeError):
    """The city's token refused or failed; the message never carries the PIN."""


@dataclass(frozen=True)
class CitySignatureResult:
    pdf: bytes
    signer_subject: str
    signed_at: datetime


def load_pem_files(paths: Sequence[Any]) -> tuple[x509.Certificate, ...]:
    certs: list[x509.Certificate] = []
    for path in paths:
        certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return tuple(certs)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


class _UnparsedTokens(TimeStamper):
    """The timestamper's tokens, each loaded afresh from its DER before pyHanko embeds it.

    The TSA connector parses a token completely to verify it; asn1crypto then re-encodes
    every parsed level each time pyHanko dumps or copies the signer info that holds the
    token, work that grows with the nesting depth. A token loaded from its bytes dumps
    them as they are (docs/performance.md)."""

    def __init__(self, inner: TimeStamper) -> None:
        super().__init__(include_nonce=inner.include_nonce)  # type: ignore[no-untyped-call]
        self.inner = inner

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str
                              ) -> cms.ContentInfo:
        token = await self.inner.async_timestamp(message_digest, md_algorithm)
        return cms.ContentInfo.load(token.dump())


class CitySigner:
    """Signs contracts with the city's PKCS#11 key (see the module docstring)."""

    def __init__(self, settings: CitySignerSettings, timestamper: TimeStamper, *,
                 chain: Sequence[x509.Certificate] = (),
                 trust_roots: Sequence[x509.Certificate] = ()) -> None:
        self.settings = settings
        self.timestamper: TimeStamper = _UnparsedTokens(timestamper)
        self.chain = tuple(chain) or load_pem_files(settings.chain)
        self.trust_roots = tuple(trust_roots) or load_pem_files(settings.trust_roots)
        self._reserved: int | None = _RESERVED

    def __repr__(self) -> str:
        return (f"CitySigner(module={self.settings.module!r}, "
                f"token={self.settings.token_label!r})")

    def _validation_context(self) -> ValidationContext:
        return ValidationContext(
            trust_roots=[_asn1(c) for c in self.trust_roots],
            other_certs=[_asn1(c) for c in self.chain],
            allow_fetching=False,
            # The city's CA may publish no CRL the hub can reach: what is there is embedded.
            revocation_mode="soft-fail",
        )

    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> CitySignatureResult:
        """Sign ``pdf`` as PAdES B-LT; returns the signed bytes and who signed when."""
        s = self.settings
        try:
            session = open_pkcs11_session(s.module, token_criteria=TokenCriteria(
                label=s.token_label), user_pin=s.pin.get_secret_value())
        except (p11e.PKCS11Error, SigningError) as exc:
            raise CitySignerError(f"cannot open the city's token {s.token_label!r}: "
                                  f"{type(exc).__name__}") from None
        try:
            signer = PKCS11Signer(session, cert_label=s.key_label, key_label=s.key_label,
                                  ca_chain=[_asn1(c) for c in self.chain])
            meta = signers.PdfSignatureMetadata(
                field_name=field_name, md_algorithm=_MD, reason=s.reason,
                subfilter=fields.SigSeedSubFilter.PADES, embed_validation_info=True,
                validation_context=self._validation_context())
            try:
                out = await self._sign(pdf, meta, signer, self._reserved)
            except SigningError as exc:
                if _TOO_LARGE not in str(exc):
                    raise
                self._reserved = None  # a longer chain or token than foreseen: estimate
                out = await self._sign(pdf, meta, signer, None)
            subject = signer.signing_cert.subject.human_friendly
        except (p11e.PKCS11Error, SigningError) as exc:
            raise CitySignerError(f"the city's token did not sign: {type(exc).__name__}: "
                                  f"{exc}") from None
        finally:
            session.close()
        return CitySignatureResult(out.getvalue(), subject, datetime.now(UTC))

    async def _sign(self, pdf: bytes, meta: signers.PdfSignatureMetadata, signer: PKCS11Signer,
                    reserved: int | None) -> BytesIO:
        out = BytesIO()
        await signers.PdfSigner(meta, signer=signer, timestamper=self.timestamper
                                ).async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)),
                                                 bytes_reserved=reserved, output=out)
        return out
