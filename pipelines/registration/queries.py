"""Read-side queries for the card agent gateway (REG-1, REG-3, RNW-7, PIN-2).

:func:`find_active_card` answers "whose card is this?" when a card authenticates:
only a registered, active, unexpired card counts (a card renewed away never
authenticates again, RNW-7); :func:`login_card_of` gives the login decision
(``login.decide_login``) what it reads of a card, to say why a session is refused.
:func:`verify_password` lets the gateway check the password of a 資格審査情報 lookup so
that the password itself never travels (REG-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from pipelines.registration.login import LoginCard, login_card
from pipelines.registration.models import (
    CardRegistrationRow,
    CardRow,
    ContractorRow,
    QualificationRow,
)
from pipelines.registration.store import aware, card_of, check_password
from schemas.registration import Domain

__all__ = ["ActiveCard", "find_active_card", "login_card_of", "verify_password"]


@dataclass(frozen=True, slots=True)
class ActiveCard:
    """A card that may act for its user ID now (PIN-2: the signature binds this user ID)."""

    user_id: str
    company_id: str
    network: str
    holder_name: str
    issuer: str
    serial: str
    valid_until: datetime
    registered_at: tuple[tuple[str, Domain], ...]
    """(entity, domain) pairs where the card is actively registered."""


def find_active_card(session: Session, issuer: str, serial: str, at: datetime, *,
                     entity: str | None = None, domain: Domain | None = None) -> ActiveCard | None:
    """The registered, active, unexpired card (issuer, serial) at ``at``, or ``None``.

    With ``entity`` / ``domain``, the card must be active there too.
    """
    card = session.exec(select(CardRow).where(CardRow.issuer == issuer,
                                              CardRow.serial == serial)).first()
    if card is None or card.id is None:
        return None
    if not aware(card.not_before) <= at <= aware(card.not_after):
        return None
    active = tuple(sorted(
        (r.entity, Domain(r.domain)) for r in session.exec(
            select(CardRegistrationRow).where(CardRegistrationRow.card_id == card.id,
                                              CardRegistrationRow.status == "active"))
        if (entity is None or r.entity == entity)
        and (domain is None or r.domain == domain.value)))
    if not active:
        return None
    contractor = session.exec(select(ContractorRow).where(
        ContractorRow.network == card.network, ContractorRow.user_id == card.user_id)).first()
    if contractor is None:
        return None
    return ActiveCard(user_id=card.user_id, company_id=contractor.company_id,
                      network=card.network, holder_name=card.holder_name, issuer=card.issuer,
                      serial=card.serial, valid_until=aware(card.not_after),
                      registered_at=active)


def login_card_of(session: Session, issuer: str, serial: str) -> LoginCard | None:
    """The card (issuer, serial) as the login decision reads it (``login.decide_login``),
    whatever its state: unknown, expired, renewed away, registered elsewhere."""
    card = session.exec(select(CardRow).where(CardRow.issuer == issuer,
                                              CardRow.serial == serial)).first()
    if card is None or card.id is None:
        return None
    regs = session.exec(select(CardRegistrationRow).where(
        CardRegistrationRow.card_id == card.id))
    return login_card(card_of(card, regs))


def verify_password(session: Session, entity: str, domain: Domain, user_id: str,
                    password: str) -> bool:
    """Whether ``password`` is the one of this 資格審査情報 row (REG-3). Never logged."""
    verifier = session.exec(select(QualificationRow.password_verifier).where(
        QualificationRow.entity == entity, QualificationRow.domain == domain.value,
        QualificationRow.user_id == user_id)).first()
    return check_password(password, verifier)
