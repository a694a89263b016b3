"""利用者変更 rules (CHG-1 … CHG-4): pure decisions.

A change touches the contacts of one registered card in one domain, after the person
authenticated with that card (CHG-1, CHG-2); a card renewed away is no longer usable
for it (RNW-7). The person chooses whether it reaches the other entities (CHG-3, next
day unless applied at once), and a mail to the ICカード利用部署 address confirms it
(CHG-4, NTF-1). :func:`decide_change` runs the :data:`GATES`, then every one of the
:data:`CHECKS`, each a function named after its rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipelines.registration.common import (
    Check,
    Decision,
    Found,
    Gate,
    Outcome,
    all_failing,
    authentication_violation,
    deterministic_id,
    notice_mail,
    rejected,
    win_1_within_service_window,
)
from pipelines.registration.policy import EntityPolicy, PolicyBook
from pipelines.registration.register import email_violation
from pipelines.registration.texts import violation
from pipelines.registration.world import Card, RegistrationStatus, World
from schemas import fast
from schemas.mail import MailKind
from schemas.registration import (
    ContactChanged,
    ContactChangeRequested,
    Domain,
    PropagationKind,
)
from schemas.registration import PropagationScheduled as Scheduled
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import show_date, show_date_en

__all__ = ["CHECKS", "GATES", "Change", "decide_change"]

_DOMAIN_EN = {Domain.WORKS: "works", Domain.GOODS: "goods"}


def _where(entity_name: str, domain: Domain) -> dict[str, str]:
    return {"entity": entity_name, "domain": domain.label_ja, "domain_en": _DOMAIN_EN[domain]}


@dataclass(slots=True)
class Change:
    """One 利用者変更 and what its checks look at."""

    world: World
    cmd: ContactChangeRequested
    book: PolicyBook
    policy: EntityPolicy
    now: datetime
    acted_at: datetime
    known: Card | None
    """The card as the registry knows it, if it does."""
    # Set once the gates pass (the card is registered here for this user ID):
    registered_at: tuple[str, ...] = field(init=False)
    """CHG-3: the other entities where the card is registered in this domain."""


def chg_1_card_just_authenticated(c: Change) -> RuleViolation | None:
    """CHG-1: the person authenticated with the card (PIN-2, answered as CHG-1)."""
    found = authentication_violation(c.cmd.card, c.policy, c.now)
    return None if found is None else found.model_copy(update={"rule_id": "CHG-1"})


def chg_1_card_registered_to_this_user(c: Change) -> RuleViolation | None:
    card = c.known
    if card is None or card.user_id != c.cmd.user_id or card.network != c.policy.network:
        return violation("change-not-registered", field="card",
                         **_where(c.policy.name, c.cmd.domain))
    return None


def rnw_7_card_not_renewed_away(c: Change) -> RuleViolation | None:
    """RNW-7: a card renewed away here is no longer usable (not "unregistered")."""
    reg = c.known.registrations.get((c.cmd.procuring_entity, c.cmd.domain)) if c.known else None
    if reg is not None and reg.status is RegistrationStatus.REVOKED:
        return violation("change-card-revoked", field="card")
    return None


def chg_2_card_registered_in_this_domain(c: Change) -> RuleViolation | None:
    """CHG-2: registered here in this domain (another domain is told as such, CHG-1 else)."""
    cmd, card = c.cmd, c.known
    if card is None or card.active_at(cmd.procuring_entity, cmd.domain):
        return None
    other = any(card.active_at(cmd.procuring_entity, d) for d in Domain if d != cmd.domain)
    key = "change-other-domain" if other else "change-not-registered"
    return violation(key, field="domain", **_where(c.policy.name, cmd.domain))


def chg_1_card_valid(c: Change) -> Found:
    card = c.cmd.card
    if card.not_before <= c.now <= card.not_after:
        return None
    return violation("change-card-invalid", end=show_date(card.not_after),
                     end_en=show_date_en(card.not_after), field="card")


def chg_4_card_department_email_typed_twice_alike(c: Change) -> Found:
    """CHG-4: the notice goes to the ICカード利用部署 address, so it is typed twice alike."""
    return email_violation(c.cmd.card_department_contact, "", "", "card_department_contact",
                           key="change-email-twice")


def reg_7_main_contact_email_typed_twice_alike(c: Change) -> Found:
    return email_violation(c.cmd.representative_contact, "代表窓口", "main contact",
                           "representative_contact")


def chg_3_applied_now_only_where_registered(c: Change) -> Found:
    return [violation("propagate-target", rule="CHG-3", target=target, field="apply_now_to")
            for target in c.cmd.apply_now_to if target not in c.registered_at] or None


GATES: tuple[Gate[Change], ...] = (
    win_1_within_service_window, chg_1_card_just_authenticated,
    chg_1_card_registered_to_this_user, rnw_7_card_not_renewed_away,
    chg_2_card_registered_in_this_domain)
"""Checked in order; the first that fails is the only answer."""

CHECKS: tuple[Check[Change], ...] = (
    chg_1_card_valid, chg_4_card_department_email_typed_twice_alike,
    reg_7_main_contact_email_typed_twice_alike, chg_3_applied_now_only_where_registered)
"""Checked once the gates pass, every one: the rejection names all that fail, in order."""


def decide_change(world: World, cmd: ContactChangeRequested, book: PolicyBook, now: datetime,
                  *, acted_at: datetime | None = None) -> Decision:
    """Decide one 利用者変更."""
    def reject(vs: list[RuleViolation]) -> Decision:
        return rejected(type(cmd).message_type, cmd.procuring_entity, vs, domain=cmd.domain,
                        user_id=cmd.user_id, card=cmd.card.ref)

    policy = book.get(cmd.procuring_entity, cmd.system)
    if policy is None:
        return reject([violation("unknown-entity", entity=cmd.procuring_entity,
                                 system=cmd.system.label_ja, system_en=cmd.system.value)])
    c = Change(world, cmd, book, policy, now, acted_at or now, world.cards.get(cmd.card.key))
    for gate in GATES:
        if (first := gate(c)) is not None:
            return reject([first])
    assert c.known is not None  # chg_1_card_registered_to_this_user found it
    card = c.known
    registered_at = c.registered_at = tuple(
        e for e in book.entities_in(policy.network)
        if e != cmd.procuring_entity and card.active_at(e, cmd.domain))
    if vs := all_failing(CHECKS, c):
        return reject(vs)
    contractor = world.contractors.get((policy.network, cmd.user_id))
    changed = fast.build(
        ContactChanged,
        procuring_entity=cmd.procuring_entity, network=policy.network, domain=cmd.domain,
        user_id=cmd.user_id, card=cmd.card.ref, department_name=cmd.department_name,
        representative_contact=(cmd.representative_contact.to_contact()
                                if cmd.representative_contact else None),
        card_department_contact=(cmd.card_department_contact.to_contact()
                                 if cmd.card_department_contact else None))
    events: list[Payload] = [changed]
    targets = registered_at if cmd.apply_to_other_entities else cmd.apply_now_to
    seed = (cmd.procuring_entity, cmd.domain, *cmd.card.key, now.isoformat())
    for target in targets:
        immediate = target in cmd.apply_now_to
        events.append(fast.build(
            Scheduled,
            propagation_id=deterministic_id("propagate", PropagationKind.CHANGE, target, *seed),
            kind=PropagationKind.CHANGE, target_entity=target,
            due_at=now if immediate else policy.next_batch(now), immediate=immediate,
            source=changed))
    contact = changed.card_department_contact or card.registrations[
        (cmd.procuring_entity, cmd.domain)].contact
    company_name = contractor.company_name if contractor else ""
    mail = notice_mail(MailKind.CHANGE, policy=policy, company_name=company_name or "-",
                       company_id=contractor.company_id if contractor else "-",
                       user_id=cmd.user_id, contact=contact, card=cmd.card, seed=seed)
    return Decision(Outcome.ACCEPTED, tuple(events), (mail,))
