"""Checking an RFC 3161 timestamp token on its own (RFC 3161 §2.4.2, RFC 5816).

A token is accepted only when its signature is intact, its message imprint equals the
digest that was timestamped, and the TSA certificate chains to one of the trust roots
with the ``id-kp-timeStamping`` extended key usage. The nonce is checked by the client
that made the request (it alone knows it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

__all__ = ["TokenRejectedError", "tsa_validation_context", "verify_token"]


class TokenRejectedError(Exception):
    """A timestamp token failed a check; ``reason`` says which (never secret data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"timestamp token rejected: {reason}")
        self.reason = reason


def tsa_validation_context(roots: Iterable[x509.Certificate]) -> ValidationContext:
    """A validation context trusting ``roots`` only, offline (the test PKI has no CRLs)."""
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r.public_bytes(Encoding.DER)) for r in roots],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )


async def verify_token(
    token: cms.ContentInfo,
    message_digest: bytes,
    md_algorithm: str,
    roots: Iterable[x509.Certificate],
) -> dt.datetime:
    """Check ``token`` for ``message_digest``; return its generation time (``genTime``)."""
    if token["content_type"].native != "signed_data":
        raise TokenRejectedError("not a CMS SignedData")
    signed_data = token["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    if not isinstance(info, tsp.TSTInfo):
        raise TokenRejectedError("SignedData does not carry a TSTInfo")
    imprint = info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != md_algorithm:
        raise TokenRejectedError(f"imprint algorithm is not {md_algorithm}")
    if imprint["hashed_message"].native != message_digest:
        raise TokenRejectedError("message imprint does not match the timestamped digest")

    def expected(algorithm: str) -> bytes:
        return message_digest if algorithm == md_algorithm else b""

    try:
        kwargs = await validate_tst_signed_data(
            signed_data, tsa_validation_context(roots), expected
        )
    except SignatureValidationError as exc:
        raise TokenRejectedError(f"token signature invalid: {exc.failure_message}") from exc
    status = TimestampSignatureStatus(**kwargs)
    if not status.intact or not status.valid:
        raise TokenRejectedError("token signature is not intact")
    if not status.trusted:
        raise TokenRejectedError(
            "TSA certificate does not chain to a trusted root with timeStamping"
        )
    generated: dt.datetime = info["gen_time"].native
    return generated
