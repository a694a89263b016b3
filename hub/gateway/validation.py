"""Validation of a PDF signed at the edge, before the hub accepts it (CON-5, PIN-2).

pyHanko validates the PAdES signature against the hub's trust roots: the signature must
be intact (any edit of a signed PDF breaks it, CON-5), cover the whole file, chain to a
trusted card CA, carry a valid signature timestamp from a trusted TSA (B-T), and be made
by the very card the job was assigned to (PIN-2: the signature binds the user ID
through the registered card).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO

from cryptography import x509
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import SignatureCoverageLevel

from connectors.tsa.verify import tsa_validation_context
from schemas.rejection import RuleViolation

__all__ = ["SignatureRejectedError", "ValidatedSignature", "validate_signed_pdf"]


@dataclass(frozen=True)
class ValidatedSignature:
    """What the hub learned from an accepted signature."""

    signer_issuer: str
    signer_serial: int
    signed_at: dt.datetime
    timestamped_at: dt.datetime


class SignatureRejectedError(Exception):
    """The returned PDF is refused; ``violation`` names CON-5 or PIN-2."""

    def __init__(self, violation: RuleViolation) -> None:
        super().__init__(f"{violation.rule_id}: {violation.message_en}")
        self.violation = violation


def _con5(detail_en: str, detail_ja: str) -> SignatureRejectedError:
    return SignatureRejectedError(RuleViolation(
        rule_id="CON-5",
        message_ja=f"署名済みPDFの署名を検証できません: {detail_ja}",
        message_en=f"The signature of the signed PDF does not validate: {detail_en}",
        next_step_ja="元の文書に署名し直して提出してください。署名後のPDFは編集しないでください。",
        next_step_en="Sign the original document again and submit it; do not edit a signed PDF.",
    ))


async def _validate(pdf: bytes, roots: tuple[x509.Certificate, ...],
                    expected_issuer: str | None, expected_serial: int | None,
                    ) -> ValidatedSignature:
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        signatures = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError) as exc:
        raise _con5("not a readable PDF", "PDFとして読み込めません") from exc
    if len(signatures) != 1:
        raise _con5(f"{len(signatures)} signatures, expected 1", "署名の数が1つではありません")
    context = tsa_validation_context(roots)
    try:
        status = await async_validate_pdf_signature(
            signatures[0], signer_validation_context=context, ts_validation_context=context
        )
    except (SignatureValidationError, PdfReadError, ValueError) as exc:
        raise _con5("signature structure invalid", "署名の構造が不正です") from exc
    if not status.intact or not status.valid:
        raise _con5("the document was altered after signing", "署名後に文書が改変されています")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise _con5("the signature does not cover the whole file",
                    "署名が文書全体を対象としていません")
    if not status.trusted:
        raise _con5("the signer's certificate is not from a trusted CA",
                    "署名者の証明書が信頼された認証局のものではありません")
    ts = status.timestamp_validity
    if ts is None or not (ts.intact and ts.valid and ts.trusted):
        raise _con5("no valid signature timestamp (PAdES B-T)",
                    "有効な署名タイムスタンプがありません")
    cert = status.signing_cert
    issuer = x509.load_der_x509_certificate(cert.dump()).issuer.rfc4514_string()
    if expected_issuer is not None and (issuer, cert.serial_number) != (
        expected_issuer, expected_serial
    ):
        raise SignatureRejectedError(RuleViolation(
            rule_id="PIN-2",
            message_ja="この文書は割り当てられたICカード以外で署名されています。",
            message_en="The document was signed with a card other than the one it was assigned to.",
            next_step_ja="登録済みのご自身のICカードで署名し直してください。",
            next_step_en="Sign it again with your own registered IC card.",
        ))
    return ValidatedSignature(issuer, cert.serial_number, status.signer_reported_dt
                              or ts.timestamp, ts.timestamp)


def validate_signed_pdf(pdf: bytes, roots: Iterable[x509.Certificate],
                        expected_issuer: str | None = None,
                        expected_serial: int | None = None) -> ValidatedSignature:
    """Validate ``pdf`` (synchronously; call from a worker thread in async code).

    With ``expected_issuer``/``expected_serial``, the signer must be that card (PIN-2).
    """
    return asyncio.run(_validate(pdf, tuple(roots), expected_issuer, expected_serial))
