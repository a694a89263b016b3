"""The registration state the rules decide on, and how events change it.

:class:`World` is plain data: the qualification registry (資格審査情報), contractors
(user ID, 企業ID, 代表窓口), cards (issuer + serial, REG-1) with their registrations per
entity and domain, held confirmations (REG-11) and pending propagations (REG-9).
The database store loads the slice a command needs into a World, the rules decide,
:func:`apply` evolves the World with the resulting events, and the store writes back
what changed: the evolution is written once, here.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from pipelines.registration.grouped import Grouped
from schemas.qualification import QualificationRecord, QualificationUpdated
from schemas.registration import (
    CardFacts,
    CardRegistered,
    CardRegistrationRequested,
    CardRenewed,
    CardRevoked,
    Contact,
    ContactChanged,
    Domain,
    PropagationScheduled,
    RegistrationNeedsConfirmation,
    RegistrationRejected,
)
from schemas.registry import Payload
from schemas.text import name_key, trade_name_key

__all__ = [
    "Card",
    "CardKey",
    "CardRegistration",
    "Contractor",
    "PendingConfirmation",
    "PendingPropagation",
    "PropagationStatus",
    "RegistrationStatus",
    "World",
    "apply",
    "holder_matches",
    "usable_card",
]

CardKey = tuple[str, str]
"""(issuer DN, serial number): a card's identity (REG-1)."""


class RegistrationStatus(enum.StrEnum):
    """State of one card at one entity and domain."""

    ACTIVE = "active"
    """Registered and usable while the certificate is valid (REG-2)."""
    REVOKED = "revoked"
    """Replaced by renewal: never usable again there (RNW-7)."""


class PropagationStatus(enum.StrEnum):
    """State of one pending propagation (REG-9, CHG-3, RNW-8)."""

    PENDING = "pending"
    """Waiting for its due time."""
    DONE = "done"
    """Applied at the target entity."""
    SKIPPED = "skipped"
    """Nothing to do there any more (not qualified, already registered, card gone)."""


@dataclass(frozen=True, slots=True)
class Contractor:
    """A user ID in one network, with its 企業ID and 代表窓口 (shared by its cards, REG-2)."""

    network: str
    user_id: str
    company_id: str
    company_name: str
    company_key: str
    corporate_number: str | None
    representative_contact: Contact | None


@dataclass(frozen=True, slots=True)
class CardRegistration:
    """One card at one entity and domain, with its ICカード利用部署 contact."""

    status: RegistrationStatus
    department_name: str
    contact: Contact
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class Card:
    """A registered card: belongs to exactly one user ID, forever (REG-1)."""

    network: str
    user_id: str
    facts: CardFacts
    registrations: dict[tuple[str, Domain], CardRegistration]

    def active_at(self, entity: str, domain: Domain) -> bool:
        reg = self.registrations.get((entity, domain))
        return reg is not None and reg.status is RegistrationStatus.ACTIVE

    def revoked_anywhere(self) -> bool:
        return any(r.status is RegistrationStatus.REVOKED for r in self.registrations.values())


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """A registration held back until the person confirms it (REG-11)."""

    confirmation_id: uuid.UUID
    command: CardRegistrationRequested
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PendingPropagation:
    """One propagation to one target entity, with its own state (resumable, REG-9)."""

    scheduled: PropagationScheduled
    status: PropagationStatus = PropagationStatus.PENDING
    note: str = ""


@dataclass
class World:
    """The registration state (or the slice of it one command needs)."""

    qualifications: dict[tuple[str, Domain, str], QualificationRecord] = field(
        default_factory=dict)
    contractors: dict[tuple[str, str], Contractor] = field(default_factory=dict)
    cards: dict[CardKey, Card] = field(default_factory=dict)
    confirmations: dict[uuid.UUID, PendingConfirmation] = field(default_factory=dict)
    propagations: dict[uuid.UUID, PendingPropagation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Filed by owner and by company, so that the rules' look-ups are not scans.
        if not isinstance(self.contractors, Grouped):
            self.contractors = Grouped(_company_groups, self.contractors)
        if not isinstance(self.cards, Grouped):
            self.cards = Grouped(_owner_group, self.cards)

    def copy(self) -> World:
        return World(dict(self.qualifications), dict(self.contractors), dict(self.cards),
                     dict(self.confirmations), dict(self.propagations))

    def qualification(self, entity: str, domain: Domain,
                      user_id: str) -> QualificationRecord | None:
        return self.qualifications.get((entity, domain, user_id))

    def cards_of(self, network: str, user_id: str) -> Iterator[Card]:
        assert isinstance(self.cards, Grouped)
        return iter(self.cards.group((network, user_id)))

    def contractors_like(self, network: str, company_key: str,
                         corporate_number: str | None) -> Iterator[Contractor]:
        """Contractors of the network that look like the same company (REG-11): the same
        商号 key, or the same 法人番号. Each once."""
        assert isinstance(self.contractors, Grouped)
        same_name = self.contractors.group(("k", network, company_key))
        if corporate_number is None:
            return iter(same_name)
        same_number = self.contractors.group(("n", network, corporate_number))
        if not same_name or not same_number:
            return iter(same_name or same_number)
        # One contractor is filed under both groups as the same object.
        named = {id(c) for c in same_name}
        return iter(same_name + [c for c in same_number if id(c) not in named])


def _owner_group(card: Card) -> tuple[tuple[str, str]]:
    return ((card.network, card.user_id),)


def _company_groups(c: Contractor) -> tuple[tuple[str, str, str], ...]:
    if c.corporate_number is None:
        return (("k", c.network, c.company_key),)
    return ("k", c.network, c.company_key), ("n", c.network, c.corporate_number)


def apply(world: World, event: Payload, now: datetime) -> None:
    """Evolve ``world`` in place by one event (events the rules emitted, in order)."""
    if isinstance(event, CardRegistered):
        _registered(world, event, now)
    elif isinstance(event, ContactChanged):
        _changed(world, event)
    elif isinstance(event, CardRenewed):
        _renewed(world, event, now)
    elif isinstance(event, CardRevoked):
        _revoked(world, event)
    elif isinstance(event, PropagationScheduled):
        world.propagations.setdefault(event.propagation_id, PendingPropagation(event))
    elif isinstance(event, RegistrationNeedsConfirmation):
        world.confirmations[event.confirmation_id] = PendingConfirmation(
            event.confirmation_id, event.held, now)
    elif isinstance(event, RegistrationRejected) and event.confirmation_id is not None:
        world.confirmations.pop(event.confirmation_id, None)  # the city rejected it (REG-11)
    elif isinstance(event, QualificationUpdated):
        for row in event.rows:
            world.qualifications[(event.procuring_entity, event.domain, row.user_id)] = row


def _registered(world: World, ev: CardRegistered, now: datetime) -> None:
    key = (ev.network, ev.user_id)
    if key not in world.contractors:
        q = world.qualification(ev.propagated_from or ev.procuring_entity, ev.domain, ev.user_id)
        world.contractors[key] = Contractor(
            network=ev.network, user_id=ev.user_id, company_id=ev.company_id,
            company_name=ev.company_name, company_key=trade_name_key(ev.company_name),
            corporate_number=q.corporate_number if q else None,
            representative_contact=ev.representative_contact)
    card_key = ev.card.key
    old = world.cards.get(card_key)
    regs = dict(old.registrations) if old else {}
    regs[(ev.procuring_entity, ev.domain)] = CardRegistration(
        RegistrationStatus.ACTIVE, ev.department_name, ev.card_department_contact, now)
    world.cards[card_key] = Card(ev.network, ev.user_id, ev.card, regs)
    for cid, pending in list(world.confirmations.items()):
        if pending.command.card.key == card_key and pending.command.domain == ev.domain:
            del world.confirmations[cid]


def _changed(world: World, ev: ContactChanged) -> None:
    if ev.representative_contact is not None:
        key = (ev.network, ev.user_id)
        if key in world.contractors:
            world.contractors[key] = dataclasses.replace(
                world.contractors[key], representative_contact=ev.representative_contact)
    card = world.cards.get(ev.card.key)
    reg = card.registrations.get((ev.procuring_entity, ev.domain)) if card else None
    if card is None or reg is None:
        return
    reg = dataclasses.replace(
        reg,
        department_name=ev.department_name or reg.department_name,
        contact=ev.card_department_contact or reg.contact,
    )
    world.cards[ev.card.key] = dataclasses.replace(
        card, registrations={**card.registrations, (ev.procuring_entity, ev.domain): reg})


def _renewed(world: World, ev: CardRenewed, now: datetime) -> None:
    old = world.cards.get(ev.old_card.key)
    inherited = old.registrations.get((ev.procuring_entity, ev.domain)) if old else None
    if inherited is None:
        return
    new = world.cards.get(ev.new_card.key)
    regs = dict(new.registrations) if new else {}
    regs[(ev.procuring_entity, ev.domain)] = CardRegistration(
        RegistrationStatus.ACTIVE, inherited.department_name, inherited.contact, now)
    world.cards[ev.new_card.key] = Card(ev.network, ev.user_id, ev.new_card, regs)


def _revoked(world: World, ev: CardRevoked) -> None:
    card = world.cards.get(ev.card.key)
    reg = card.registrations.get((ev.procuring_entity, ev.domain)) if card else None
    if card is None or reg is None:
        return
    reg = dataclasses.replace(reg, status=RegistrationStatus.REVOKED)
    world.cards[ev.card.key] = dataclasses.replace(
        card, registrations={**card.registrations, (ev.procuring_entity, ev.domain): reg})


def usable_card(world: World, key: CardKey, at: datetime, *, entity: str | None = None,
                domain: Domain | None = None) -> Card | None:
    """The card if it may act now: registered and active (somewhere, or at ``entity`` /
    ``domain``) and inside its validity (REG-1, REG-2, RNW-7). Mirrors ``find_active_card``."""
    card = world.cards.get(key)
    if card is None or not card.facts.not_before <= at <= card.facts.not_after:
        return None
    for (e, d), reg in card.registrations.items():
        if (reg.status is RegistrationStatus.ACTIVE and (entity is None or e == entity)
                and (domain is None or d == domain)):
            return card
    return None


def holder_matches(name: str, q: QualificationRecord, legal_rep_allowed: bool) -> bool:
    """REG-5 / RNW-4: the card's 名義人 is the 契約者, or (by policy) the legal representative."""
    if name_key(name) == name_key(q.contractor_name):
        return True
    return legal_rep_allowed and name_key(name) == name_key(q.representative_name)
