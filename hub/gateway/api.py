"""Request and response bodies of the gateway (OpenAPI components).

Passwords travel only to the gateway, over TLS, as ``SecretStr`` (never in a repr or a
log); the hub forwards ``password_verified``, never the password (REG-3).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schemas.registration import ContactInput, Domain, SystemKind
from schemas.rejection import RuleViolation

__all__ = [
    "CardProofIn",
    "ChallengeOut",
    "ChangeIn",
    "JobDetailOut",
    "JobOut",
    "LoginIn",
    "OutcomeOut",
    "RegistrationIn",
    "RenewalIn",
    "RequestAcceptedOut",
    "SessionOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChallengeOut(BaseModel):
    challenge_id: str
    nonce: str = Field(description="Base64; the card signs CARD_PROOF_CONTEXT + nonce.")
    expires_at: dt.datetime


class CardProofIn(_In):
    """A card's answer to one challenge (PIN verified on the card beforehand)."""

    challenge_id: str = Field(max_length=64)
    certificate: str = Field(max_length=16_000, description="Base64 DER, read from the card.")
    chain: list[str] = Field(default_factory=list, max_length=5,
                             description="Base64 DER intermediates, card CA first.")
    signature: str = Field(max_length=2_000, description="Base64 RSA PKCS#1 v1.5, SHA-256.")


class _Where(_In):
    procuring_entity: str = Field(max_length=64)
    system: SystemKind
    domain: Domain


class LoginIn(CardProofIn):
    """Log in for one procuring entity, system and domain: the session holds only there
    (REG-1, RNW-7, CHG-2)."""

    procuring_entity: str = Field(max_length=64)
    system: SystemKind
    domain: Domain


class SessionOut(BaseModel):
    token: str = Field(description="Bearer token; short-lived, bound to this card, "
                       "entity, system and domain.")
    expires_at: dt.datetime
    network: str
    user_id: str
    company_id: str
    procuring_entity: str
    system: SystemKind
    domain: Domain


class RegistrationIn(_Where):
    """利用者登録 from the agent (REG-3, REG-7)."""

    proof: CardProofIn
    user_id: str = Field(max_length=20)
    trade_name: str = Field(max_length=200)
    password: SecretStr | None = Field(
        default=None, max_length=64,
        description="Needed where the entity's lookup asks for it (REG-3; not Yamaguchi).")
    department_name: str | None = None
    representative_contact: ContactInput | None = None
    card_department_contact: ContactInput
    apply_now_to: list[str] = Field(default_factory=list, max_length=50)


class ChangeIn(_Where):
    """利用者変更, authenticated with the card whose contacts change (CHG-1)."""

    proof: CardProofIn
    department_name: str | None = None
    representative_contact: ContactInput | None = None
    card_department_contact: ContactInput | None = None
    apply_to_other_entities: bool = False
    apply_now_to: list[str] = Field(default_factory=list, max_length=50)


class RenewalIn(_Where):
    """ICカード更新: the old card's proof first, then the new card's (RNW-6)."""

    old_proof: CardProofIn
    new_proof: CardProofIn
    apply_to_other_entities: bool = False
    apply_now_to: list[str] = Field(default_factory=list, max_length=50)


class RequestAcceptedOut(BaseModel):
    request_id: str = Field(description="Ask GET /gateway/requests/{request_id} for the outcome.")


class OutcomeOut(BaseModel):
    request_id: str
    status: Literal["pending", "done", "rejected", "needs-confirmation"]
    message_type: str | None = None
    company_id: str | None = Field(default=None, description="企業ID (REG-10).")
    summary: dict[str, object] | None = Field(default=None,
                                              description="The event, for the printable summary.")
    violations: list[RuleViolation] = Field(default_factory=list)


class JobOut(BaseModel):
    id: str
    procuring_entity: str
    subject: str
    parties: list[str]
    amount_yen: int
    document_sha256: str
    status: str
    created_at: dt.datetime
    signed_at: dt.datetime | None = None


class JobDetailOut(JobOut):
    document_url: str = Field(description="GET it for the PDF to sign: application/pdf, its "
                                          "SHA-256 in Repr-Digest (RFC 9530), equal to "
                                          "document_sha256.")
