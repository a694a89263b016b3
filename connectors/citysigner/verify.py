"""Re-validation of a stored contract's signatures on demand (CON-5, CON-7).

Every embedded signature is validated with pyHanko against the given roots: it must be
intact (any edit of a signed PDF breaks it, CON-5), cryptographically valid, chain to a
trusted root, carry a valid signature timestamp, and whatever was added after it must
be no more than signatures, form filling or long-term validation data (the DSS of
PAdES B-LT). The report says per signature what was found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO

from cryptography import x509
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError

from connectors.tsa.verify import tsa_validation_context

__all__ = [
    "SignatureReport",
    "ValidationReport",
    "async_validate_contract_pdf",
    "validate_contract_pdf",
]

_ALLOWED = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING)


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    signer: str
    intact: bool
    valid: bool
    trusted: bool
    timestamped_at: datetime | None
    modification: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ValidationReport:
    """The verdict on one PDF: ``valid`` only when every signature is."""

    signatures: tuple[SignatureReport, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def valid(self) -> bool:
        return bool(self.signatures) and not self.problems and all(
            s.ok for s in self.signatures)


async def _one(sig: object, context: object) -> SignatureReport:
    name = str(getattr(sig, "field_name", "?"))
    try:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=context,  # type: ignore[arg-type]
            ts_validation_context=context)  # type: ignore[arg-type]
    except (SignatureValidationError, PdfReadError, ValueError) as exc:
        return SignatureReport(name, "?", False, False, False, None, "?",
                               (f"signature structure invalid: {type(exc).__name__}",))
    problems = []
    if not status.intact:
        problems.append("the document was altered after signing (CON-5)")
    if not status.valid:
        problems.append("the signature value does not verify")
    if not status.trusted:
        problems.append("the signer does not chain to a trusted root")
    ts = status.timestamp_validity
    if ts is None or not (ts.intact and ts.valid and ts.trusted):
        problems.append("no valid signature timestamp")
    level = status.modification_level
    if level is None or level not in _ALLOWED:
        problems.append(f"modified after signing beyond what signing allows ({level})")
    return SignatureReport(
        name, status.signing_cert.subject.human_friendly, status.intact, status.valid,
        status.trusted, ts.timestamp if ts else None, str(level.name if level else None),
        tuple(problems))


async def async_validate_contract_pdf(pdf: bytes, roots: Iterable[x509.Certificate]
                                      ) -> ValidationReport:
    """Validate every signature of ``pdf`` against ``roots``."""
    try:
        signatures = PdfFileReader(BytesIO(pdf), strict=False).embedded_signatures
    except (PdfReadError, ValueError, KeyError) as exc:
        return ValidationReport(problems=(f"not a readable PDF: {type(exc).__name__}",))
    if not signatures:
        return ValidationReport(problems=("no signature",))
    context = tsa_validation_context(tuple(roots))
    reports = [await _one(sig, context) for sig in signatures]
    return ValidationReport(tuple(reports))


def validate_contract_pdf(pdf: bytes, roots: Iterable[x509.Certificate]) -> ValidationReport:
    """Validate every signature of ``pdf`` (synchronously; use a thread in async code)."""
    return asyncio.run(async_validate_contract_pdf(pdf, tuple(roots)))
