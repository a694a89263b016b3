"""PAdES signing with the IC card (ETSI EN 319 142-1, baseline B-T) through pyHanko.

:class:`CardSigner` is a pyHanko ``Signer`` whose raw signature is made by the card
(PC/SC PSO or PKCS#11), so the key never leaves it. :func:`sign_pdf` signs a whole PDF
with a signature timestamp from the TSA connector (B-T) and returns the signed bytes, or
raises: a card pulled out mid-signature leaves no half-signed document, because nothing
is returned or written until pyHanko has finished.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from io import BytesIO

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from card_agent.card import CardSession

__all__ = ["RESERVED", "CardSigner", "sign_pdf"]

_MD = "sha256"
RESERVED = 16_384
"""Hex digits kept in the PDF for the CMS signature (8 KiB; the card's with its chain and
the RFC 3161 token is ~6 KiB with the test PKI). A fixed size spares pyHanko's size
estimate, a complete dry-run CMS with a dummy timestamp token fetched from the TSA
(docs/performance.md). A CMS that does not fit is made again with the estimate."""
_TOO_LARGE = "payload larger than expected"


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


class CardSigner(signers.Signer):
    """pyHanko signer whose private-key operation happens on the card."""

    def __init__(self, session: CardSession, chain: Sequence[x509.Certificate] = ()) -> None:
        self.session = session
        cert = session.certificate()
        self._size = (cert.public_key().key_size + 7) // 8  # type: ignore[union-attr]
        super().__init__(
            signing_cert=_asn1(cert),
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [_asn1(c) for c in chain]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": f"{_MD}_rsa"}),
        )

    async def async_sign_raw(self, data: bytes, digest_algorithm: str,
                             dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(self._size)
        digest = hashlib.new(digest_algorithm, data).digest()
        return self.session.sign_digest(digest, digest_algorithm)


def sign_pdf(
    pdf: bytes,
    session: CardSession,
    timestamper: TimeStamper,
    *,
    chain: Sequence[x509.Certificate] = (),
    field_name: str = "ContractorSignature",
    reason: str | None = None,
    reserved: int | None = RESERVED,
) -> bytes:
    """Sign ``pdf`` as PAdES B-T with the card in ``session`` (PIN already verified).

    ``reserved``: hex digits kept for the signature; None lets pyHanko estimate them.
    """
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=_MD,
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=reason,
    )
    pdf_signer = signers.PdfSigner(meta, signer=CardSigner(session, chain),
                                   timestamper=timestamper)
    for size in dict.fromkeys((reserved, None)):  # then pyHanko's estimate, if too small
        out = BytesIO()
        try:
            pdf_signer.sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=out,
                                bytes_reserved=size)
        except SigningError as exc:
            if size is None or _TOO_LARGE not in str(exc):
                raise
        else:
            break
    return out.getvalue()
