"""Card authentication at the gateway: a fresh server challenge signed by the IC card.

The hub issues a random nonce (single use, short-lived, stored so every hub process
agrees). The agent signs ``CARD_PROOF_CONTEXT + nonce`` with the card (RSA PKCS#1 v1.5,
SHA-256) after the PIN was accepted on the card, and sends the signature with the card's
certificate. The hub accepts the proof only when the challenge is unused and unexpired
(a replayed or stale answer is refused), the certificate chains to a trusted card CA and
is inside its validity (REG-6), and the signature verifies with its key. For a login the
card must also be registered and active (REG-1, RNW-7): see :mod:`.sessions`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InvalidCertificateError,
    PathBuildingError,
    PathValidationError,
)
from sqlmodel import Session

from hub.gateway.errors import refusal
from hub.gateway.models import ChallengeRow
from schemas.registration import CardFacts

__all__ = [
    "CARD_PROOF_CONTEXT",
    "VerifiedCard",
    "card_facts",
    "consume_challenge",
    "issue_challenge",
    "proof_message",
    "verify_card_proof",
]

CARD_PROOF_CONTEXT = b"procurement-hub/gateway/card-proof/v1\n"
"""Domain separation: a card signature made for a login can never pass for a document."""


def proof_message(nonce: bytes) -> bytes:
    """What the card signs to answer the challenge ``nonce``."""
    return CARD_PROOF_CONTEXT + nonce


@dataclass(frozen=True)
class VerifiedCard:
    """A card that just proved possession of its key, and what the hub read from it."""

    certificate: x509.Certificate
    facts: CardFacts


def issue_challenge(session: Session, now: dt.datetime, ttl: dt.timedelta) -> ChallengeRow:
    row = ChallengeRow(id=uuid.uuid4().hex, nonce=secrets.token_bytes(32), created_at=now,
                       expires_at=now + ttl)
    session.add(row)
    return row


def consume_challenge(session: Session, challenge_id: str, now: dt.datetime) -> bytes:
    """Mark the challenge used and return its nonce; refuse a replayed or stale one.

    One conditional UPDATE: of two hub processes racing on the same answer, one wins.
    """
    table = ChallengeRow.__table__  # type: ignore[attr-defined]
    result = session.execute(
        sa.update(table)
        .where(table.c.id == challenge_id, table.c.used_at.is_(None), table.c.expires_at > now)
        .values(used_at=now)
        .returning(table.c.nonce)
    ).first()
    if result is None:
        raise refusal(401, "PIN-2",
                      ("認証要求が無効です(使用済み、期限切れ、または不明)。",
                       "The challenge is invalid (already used, expired or unknown)."),
                      ("もう一度ログインしてください。",
                       "Log in again."))
    nonce: bytes = result[0]
    return nonce


def _decode(label: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise refusal(422, "PIN-2",
                      (f"{label} が base64 ではありません。",
                       f"{label} is not base64."),
                      ("カードエージェントを更新してください。",
                       "Update the card agent.")) from exc


def _load_cert(label: str, text: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(_decode(label, text))
    except ValueError as exc:
        raise refusal(422, "PIN-2",
                      (f"{label} が証明書ではありません。",
                       f"{label} is not a certificate."),
                      ("カードエージェントを更新してください。",
                       "Update the card agent.")) from exc


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def card_facts(cert: x509.Certificate, authenticated_at: dt.datetime) -> CardFacts:
    """What the hub reads from a card certificate (REG-1 identity, 名義人, validity)."""
    return CardFacts(
        issuer=cert.issuer.rfc4514_string(),
        serial=str(cert.serial_number),
        holder_name=_attr(cert, NameOID.COMMON_NAME) or "-",
        holder_address=_attr(cert, NameOID.STREET_ADDRESS) or "-",
        holder_organization=_attr(cert, NameOID.ORGANIZATION_NAME),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        authenticated_at=authenticated_at,
    )


async def _check_chain(cert: x509.Certificate, chain: list[x509.Certificate],
                       roots: tuple[x509.Certificate, ...], now: dt.datetime) -> None:
    if not now <= cert.not_valid_after_utc or now < cert.not_valid_before_utc:
        raise refusal(403, "REG-6",
                      ("ICカードの証明書が有効期間外です。",
                       "The IC card's certificate is outside its validity period."),
                      ("有効なICカードを使用してください。期限切れの場合は新しいカードで利用者登録を"
                      "行ってください。",
                       "Use a valid IC card; if it has expired, register a new card."))
    context = ValidationContext(
        trust_roots=[_asn1(r) for r in roots], other_certs=[_asn1(c) for c in chain],
        moment=now, allow_fetching=False, revocation_mode="soft-fail",
    )
    validator = CertificateValidator(_asn1(cert), validation_context=context)
    try:
        await validator.async_validate_usage({"digital_signature"})  # type: ignore[no-untyped-call]
    except (PathBuildingError, PathValidationError, InvalidCertificateError) as exc:
        raise refusal(403, "REG-1",
                      ("ICカードの証明書が信頼された認証局のものではありません。",
                       "The IC card's certificate is not from a trusted certification authority."),
                      ("対応認証局が発行したICカードを使用してください。",
                       "Use an IC card from a supported certification authority.")) from exc


async def verify_card_proof(session: Session, roots: tuple[x509.Certificate, ...], *,
                            challenge_id: str, certificate: str, chain: list[str],
                            signature: str, now: dt.datetime) -> VerifiedCard:
    """Check one answer to a challenge (see the module docstring)."""
    nonce = consume_challenge(session, challenge_id, now)
    cert = _load_cert("certificate", certificate)
    intermediates = [_load_cert("chain", c) for c in chain]
    await _check_chain(cert, intermediates, roots, now)
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise refusal(422, "PIN-2",
                      ("対応していない鍵の種類です。",
                       "Unsupported key type."),
                      ("対応するICカードを使用してください。",
                       "Use a supported IC card."))
    try:
        public.verify(_decode("signature", signature), proof_message(nonce),
                      padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise refusal(401, "PIN-2",
                      ("ICカードの署名を検証できません。",
                       "The IC card's signature does not verify."),
                      ("ICカードを差し直してもう一度ログインしてください。",
                       "Re-insert the IC card and log in again.")) from exc
    return VerifiedCard(cert, card_facts(cert, now))

