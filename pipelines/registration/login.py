"""Who may log in, for which entity and domain (REG-1, RNW-7, CHG-2, REG-6, WIN-2).

A card session is opened for one procuring entity, system and domain, and holds only
there. :func:`decide_login` is the one decision, asked by the card-agent gateway at
login and on every call of the session, and by the scenario runner
(``hub rules evaluate``, command type ``registration.login``): the card must be
registered and active at that entity in that domain, inside its validity, and the
system not inside an announced maintenance window that stops everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from pipelines.registration.common import maintenance_violation, validity_violation
from pipelines.registration.policy import PolicyBook, WindowStop
from pipelines.registration.texts import violation
from pipelines.registration.world import Card, RegistrationStatus
from schemas.envelope import EntityCode
from schemas.registration import CardFacts, CardRef, Domain, SystemKind
from schemas.rejection import RuleViolation

__all__ = ["LOGIN_TYPE", "LoginAttempt", "LoginCard", "decide_login", "login_card"]

LOGIN_TYPE = "registration.login"
"""The scenario runner's command type of a login attempt (not a Kafka message)."""


class LoginAttempt(BaseModel):
    """A card asks for a session at one entity, system and domain."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    procuring_entity: EntityCode
    system: SystemKind
    domain: Domain
    card: CardRef


@dataclass(frozen=True, slots=True)
class LoginCard:
    """What the decision reads of a registered card: owner, validity, registrations."""

    network: str
    user_id: str
    facts: CardFacts
    registrations: Mapping[tuple[str, Domain], RegistrationStatus]


def login_card(card: Card | None) -> LoginCard | None:
    """A World card as the login decision reads it."""
    if card is None:
        return None
    return LoginCard(card.network, card.user_id, card.facts,
                     {k: r.status for k, r in card.registrations.items()})


def decide_login(book: PolicyBook, card: LoginCard | None, attempt: LoginAttempt,
                 at: datetime) -> tuple[RuleViolation, ...]:
    """Why ``card`` may not have a session for ``attempt`` at ``at`` (empty: it may)."""
    entity, domain = attempt.procuring_entity, attempt.domain
    policy = book.get(entity, attempt.system)
    if policy is None:
        return (violation("unknown-entity", entity=entity, system=attempt.system.label_ja,
                          system_en=attempt.system.value),)
    if (closed := maintenance_violation(policy, at, WindowStop.ALL)) is not None:
        return (closed,)
    where = {"entity": policy.name, "domain": domain.label_ja, "domain_en": domain.value}
    if card is None:
        return (violation("login-unknown", field="card"),)
    if card.network != policy.network:
        return (violation("login-not-here", field="procuring_entity", **where),)
    if (invalid := validity_violation(card.facts, at)) is not None:
        return (invalid,)
    status = card.registrations.get((entity, domain))
    if status is RegistrationStatus.ACTIVE:
        return ()
    active = [key for key, s in card.registrations.items() if s is RegistrationStatus.ACTIVE]
    if status is RegistrationStatus.REVOKED or not active:
        return (violation("login-renewed", field="card"),)
    if any(e == entity for e, _ in active):
        return (violation("login-other-domain", field="domain", **where),)
    return (violation("login-not-here", field="procuring_entity", **where),)
