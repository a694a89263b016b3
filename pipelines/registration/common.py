"""What the registration, change and renewal rules share: the decision they return,
how their checks run, the service window (WIN-1), card authentication (PIN-2) and
validity (REG-6) checks, 企業ID issue, deterministic ids, and the notice mails (REG-10,
CHG-4, RNW-9, NTF-1)."""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol, TypeVar

from pipelines.registration.policy import EntityPolicy, WindowStop, is_service_time
from pipelines.registration.texts import violation
from schemas import fast
from schemas.mail import MailKind, MailRequested
from schemas.registration import (
    CardFacts,
    CardRef,
    Contact,
    Domain,
    RegistrationRejected,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import show_date, show_date_en, show_datetime

__all__ = [
    "Acting",
    "Check",
    "Decision",
    "Found",
    "Gate",
    "Outcome",
    "all_failing",
    "authentication_violation",
    "company_id_for",
    "deterministic_id",
    "low_validity_warning",
    "maintenance_violation",
    "notice_mail",
    "rejected",
    "validity_violation",
    "win_1_within_service_window",
]

_NAMESPACE = uuid.UUID("6f1c0d3e-5b7a-4f0e-9b7e-2a1f3c4d5e6f")
"""The namespace of the rules' name-based ids (RFC 9562 version 5)."""


class Outcome(enum.StrEnum):
    """What the hub answers to one command."""

    ACCEPTED = "accepted"
    """Done: events and mails follow."""
    REJECTED = "rejected"
    """Refused with rule IDs; nothing changed."""
    NEEDS_CONFIRMATION = "needs-confirmation"
    """Held back as a likely mistake until the person confirms (REG-11)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The rules' answer: events to publish (and apply), mails to send, violations."""

    outcome: Outcome
    events: tuple[Payload, ...]
    mails: tuple[MailRequested, ...] = ()
    violations: tuple[RuleViolation, ...] = ()
    warnings: tuple[RuleViolation, ...] = ()


S = TypeVar("S")

Found = RuleViolation | list[RuleViolation] | None
"""What a check finds: nothing, one violation, or a list of them."""

Check = Callable[[S], Found]
"""A rule's check of a command (its subject holds the command and what it is checked
against); named after the rule, e.g. ``reg_6_card_valid``."""

Gate = Callable[[S], RuleViolation | None]
"""A check whose failure makes the later ones meaningless (no card, no qualification to
compare): the decisions run their gates in order and answer with the first failure."""


def all_failing(checks: Sequence[Check[S]], subject: S) -> list[RuleViolation]:
    """What every check finds, in the checks' order: the person sees all at once."""
    violations: list[RuleViolation] = []
    for check in checks:
        found = check(subject)
        if found is not None:
            if type(found) is list:
                violations.extend(found)
            else:
                violations.append(found)  # type: ignore[arg-type]
    return violations


def deterministic_id(*parts: str) -> uuid.UUID:
    """A UUID derived from ``parts``: the same command decided twice gives the same ids.

    ``uuid5`` of the parts joined by the unit separator (U+001F); a StrEnum part counts as
    its value.
    """
    return fast.uuid5(_NAMESPACE, "\x1f".join(parts))


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


@lru_cache(maxsize=4096)
def company_id_for(network: str, user_id: str) -> str:
    """The 16-digit 企業ID issued on a user ID's first registration.

    Derived from (network, user ID) rather than a counter, so that several hub
    processes issue it without coordination and a replay issues the same ID;
    15 digits of SHA-256 plus a Luhn check digit (typos are caught).
    """
    h = int.from_bytes(hashlib.sha256(f"{network}\x1f{user_id}".encode()).digest()[:8], "big")
    body = "9" + f"{h % 10**14:014d}"
    return body + _luhn_digit(body)


def rejected(command_type: str, entity: str, violations: list[RuleViolation] |
             tuple[RuleViolation, ...], *, domain: Domain | None = None,
             user_id: str | None = None, card: CardRef | None = None) -> Decision:
    """A rejection: one RegistrationRejected event, no state change, no mail."""
    vs = tuple(violations)
    if not vs:
        raise ValueError("a rejection names at least one violated rule")
    event = fast.build(RegistrationRejected, command_type=command_type,
                       procuring_entity=entity, domain=domain, user_id=user_id, card=card,
                       violations=vs)
    return Decision(Outcome.REJECTED, (event,), violations=vs)


class Acting(Protocol):
    """What the shared checks read of a command's subject."""

    policy: EntityPolicy
    acted_at: datetime
    """When the person acted."""


def win_1_within_service_window(s: Acting) -> RuleViolation | None:
    """WIN-1: outside the e-bid service window nothing is registered; WIN-2: nor inside
    an announced maintenance window that stops registration."""
    policy = s.policy
    if is_service_time(policy, s.acted_at):
        return maintenance_violation(policy, s.acted_at)
    hours = ("24時間" if policy.service_hours is None else
             f"{policy.service_hours[0]:%H:%M}～{policy.service_hours[1]:%H:%M}")
    return violation("closed", entity=policy.name, system=policy.system.label_ja,
                     system_en=f"{policy.system.value} system", hours=hours)


def maintenance_violation(policy: EntityPolicy, at: datetime,
                          what: WindowStop = WindowStop.REGISTRATION) -> RuleViolation | None:
    """WIN-2: inside an announced maintenance window that stops ``what``; says its end."""
    window = policy.maintenance_at(at, what)
    if window is None:
        return None
    return violation("maintenance", entity=policy.name, system=policy.system.label_ja,
                     system_en=f"{policy.system.value} system",
                     start=show_datetime(window.start), until=show_datetime(window.end),
                     until_en=window.end.isoformat(timespec="minutes"))


_MAX_SKEW = -timedelta(minutes=5)


def authentication_violation(card: CardFacts, policy: EntityPolicy,
                             now: datetime) -> RuleViolation | None:
    """PIN-2: the action is the card holder's only if the card was just authenticated."""
    if card.authenticated_at is None:
        return violation("not-authenticated", field="card.authenticated_at")
    age = now - card.authenticated_at
    # A small negative age is clock skew between the gateway and the hub, not an attack.
    if age > policy.auth_max_age or age < _MAX_SKEW:
        return violation("auth-stale", field="card.authenticated_at")
    return None


def validity_violation(card: CardFacts, now: datetime) -> RuleViolation | None:
    """REG-6: the card must be inside its validity period."""
    if now < card.not_before:
        return violation("card-not-yet-valid", start=show_date(card.not_before),
                         start_en=show_date_en(card.not_before), field="card")
    if now > card.not_after:
        return violation("card-expired", end=show_date(card.not_after),
                         end_en=show_date_en(card.not_after), field="card")
    return None


def low_validity_warning(card: CardFacts, policy: EntityPolicy,
                         now: datetime) -> RuleViolation | None:
    """REG-6: little validity left → warn and advise asking about paper bidding."""
    left = card.not_after - now
    if left < policy.low_validity:
        return violation("low-validity", end=show_date(card.not_after),
                         end_en=show_date_en(card.not_after), days=max(left.days, 0))
    return None


def notice_mail(kind: MailKind, *, policy: EntityPolicy, company_name: str, company_id: str,
                user_id: str, contact: Contact, card: CardRef,
                seed: tuple[object, ...]) -> MailRequested:
    """A REGISTRATION/CHANGE/RENEWAL notice to the ICカード利用部署 address (NTF-1).

    ``card`` may be the card's facts: only its issuer and serial are read.
    """
    values = {
        "system_name": policy.system.label_ja,
        "procuring_entity_name": policy.name,
        "company_name": company_name,
        "company_id": company_id,
        "user_id": user_id,
        "contact_name": contact.person_name,
        "contact_address": contact.address,
        "card_serial": card.serial,
        "card_issuer": card.issuer,
    }
    return fast.build(MailRequested, mail_id=deterministic_id("mail", kind, fast.text_of(seed)),
                      kind=kind, to=(contact.email,), values=values)
