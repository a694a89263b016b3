"""利用者登録 rules (REG-1 … REG-11, with PIN-2, WIN-1 and NTF-1): pure decisions.

``decide_registration(world, command, book, now)`` runs the :data:`GATES` (the service
window, card authentication, the 資格審査情報 look-up, REG-3), then every one of the
:data:`CHECKS` (REG-4, the card: REG-1, REG-5, REG-6, the input: REG-7, REG-8, and the
targets applied at once, REG-9), each a function named after its rule; then the re-issued
card policy (REG-11). On success it registers the card, schedules its propagation to the
other entities where the company is qualified (REG-9) and mails the ICカード利用部署
(REG-10, NTF-1).
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
    company_id_for,
    deterministic_id,
    low_validity_warning,
    notice_mail,
    rejected,
    validity_violation,
    win_1_within_service_window,
)
from pipelines.registration.policy import EntityPolicy, PolicyBook, ReissuedCardPolicy
from pipelines.registration.targets import refusal, split_targets
from pipelines.registration.texts import lookup_not_found, violation
from pipelines.registration.world import Contractor, World, holder_matches
from schemas import fast
from schemas.envelope import JST
from schemas.mail import MailKind
from schemas.qualification import QualificationRecord
from schemas.registration import (
    CardRegistered,
    CardRegistrationRequested,
    ContactInput,
    Domain,
    PropagationKind,
    PropagationScheduled,
    RegistrationNeedsConfirmation,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import (
    confusable_variants,
    not_found_hints,
    show_date,
    show_date_en,
    trade_name_key,
)

__all__ = ["CHECKS", "GATES", "Registration", "decide_registration", "email_violation",
           "lookup_violation"]


def email_violation(contact: ContactInput | None, which_ja: str, which_en: str,
                    field: str, key: str = "email-twice") -> RuleViolation | None:
    """REG-7: the e-mail address is typed twice identically."""
    if contact is None or contact.email == contact.email_confirmation:
        return None
    return violation(key, which=which_ja, which_en=which_en, field=f"{field}.email_confirmation")


def lookup_violation(world: World, cmd: CardRegistrationRequested, policy: EntityPolicy,
                     book: PolicyBook, now: datetime) -> RuleViolation | None:
    """REG-3: 資格審査情報 found by user ID + 商号 + password, or a not-found with hints."""
    q = None
    if policy.id_scheme.pattern.fullmatch(cmd.user_id):
        q = world.qualification(cmd.procuring_entity, cmd.domain, cmd.user_id)
    name_ok = q is not None and trade_name_key(cmd.trade_name) == trade_name_key(q.trade_name)
    password_ok = cmd.password_verified or not policy.lookup_needs_password
    if q is not None and name_ok and password_ok:
        if q.qualified_until is not None and q.qualified_until < now.astimezone(JST).date():
            return violation("lapsed", until=show_date(q.qualified_until),
                             until_en=show_date_en(q.qualified_until))
        return None
    entities = book.entities_in(policy.network)
    elsewhere = any(
        world.qualification(entity, domain, cmd.user_id) is not None
        for domain in fast.members(Domain) for entity in entities
        if entity != cmd.procuring_entity or domain is not cmd.domain)
    changed_today = (q is not None and q.password_changed_at is not None
                     and q.password_changed_at.astimezone(JST).date()
                     == now.astimezone(JST).date())
    confusable = q is None and any(
        world.qualification(cmd.procuring_entity, cmd.domain, v) is not None
        for v in confusable_variants(cmd.user_id))
    hints = not_found_hints(
        user_id=cmd.user_id, wrong_entity_or_domain=q is None and elsewhere,
        password_changed_today=changed_today,
        confusable_match=confusable or (q is not None and not password_ok),
        trade_name_mismatch=q is not None and not name_ok)
    return lookup_not_found(hints)


@dataclass(slots=True)
class Registration:
    """One 利用者登録 and what its checks look at."""

    world: World
    cmd: CardRegistrationRequested
    book: PolicyBook
    policy: EntityPolicy
    now: datetime
    acted_at: datetime
    # Set once the gates pass (REG-3 found the 資格審査情報):
    q: QualificationRecord = field(init=False)
    contractor: Contractor | None = field(init=False)
    targets: tuple[str, ...] = field(init=False)
    """REG-9: the other entities of the network where the company is qualified."""


def pin_2_card_just_authenticated(r: Registration) -> RuleViolation | None:
    return authentication_violation(r.cmd.card, r.policy, r.now)


def reg_3_qualification_found(r: Registration) -> RuleViolation | None:
    return lookup_violation(r.world, r.cmd, r.policy, r.book, r.now)


def reg_4_password_not_changed_today(r: Registration) -> Found:
    """REG-4: a password changed today is not usable for registration until tomorrow."""
    changed = r.q.password_changed_at
    if (r.policy.lookup_needs_password and changed is not None
            and changed.astimezone(JST).date() == r.now.astimezone(JST).date()):
        return violation("password-today")
    return None


def reg_1_card_free_for_this_user(r: Registration) -> Found:
    """REG-1: a card belongs to one user ID forever, and once per entity and domain."""
    card = r.world.cards.get(r.cmd.card.key)
    if card is None:
        return None
    if card.user_id != r.cmd.user_id or card.network != r.policy.network:
        return violation("card-other-user", field="card")
    if card.revoked_anywhere():
        return violation("card-revoked", field="card")
    if card.active_at(r.cmd.procuring_entity, r.cmd.domain):
        return violation("card-already", field="card")
    return None


def reg_6_card_valid(r: Registration) -> Found:
    return validity_violation(r.cmd.card, r.now)


def reg_5_holder_is_the_contractor(r: Registration) -> Found:
    """REG-5: the card holder is the 資格審査情報's contractor (or, where the entity allows,
    the legal representative)."""
    rep = r.policy.legal_representative_may_hold_card
    if holder_matches(r.cmd.card.holder_name, r.q, rep):
        return None
    return violation("holder", holder=r.cmd.card.holder_name, contractor=r.q.contractor_name,
                     rep_ja="（法人の代表者名義も可）" if rep else "",
                     rep_en=" (or the legal representative's)" if rep else "",
                     field="card.holder_name")


def reg_7_card_department_email_typed_twice_alike(r: Registration) -> Found:
    return email_violation(r.cmd.card_department_contact, "ICカード利用部署", "card department",
                           "card_department_contact")


def reg_7_main_contact_email_typed_twice_alike(r: Registration) -> Found:
    return email_violation(r.cmd.representative_contact, "代表窓口", "main contact",
                           "representative_contact")


def reg_7_first_registration_names_a_main_contact(r: Registration) -> Found:
    if r.contractor is None and r.cmd.representative_contact is None:
        return violation("representative-required", field="representative_contact")
    return None


def reg_8_main_contact_unchanged(r: Registration) -> Found:
    """REG-8: the 代表窓口 is set at the first registration and not changed by a later one."""
    given = r.cmd.representative_contact
    if (r.contractor is not None and given is not None
            and given.to_contact() != r.contractor.representative_contact):
        return violation("representative-fixed", field="representative_contact")
    return None


def reg_9_applied_now_only_where_qualified(r: Registration) -> Found:
    return [violation("propagate-target", rule="REG-9", target=target, field="apply_now_to")
            for target in r.cmd.apply_now_to if target not in r.targets] or None


GATES: tuple[Gate[Registration], ...] = (
    win_1_within_service_window, pin_2_card_just_authenticated, reg_3_qualification_found)
"""Checked in order; the first that fails is the only answer."""

CHECKS: tuple[Check[Registration], ...] = (
    reg_4_password_not_changed_today, reg_1_card_free_for_this_user, reg_6_card_valid,
    reg_5_holder_is_the_contractor, reg_7_card_department_email_typed_twice_alike,
    reg_7_main_contact_email_typed_twice_alike, reg_7_first_registration_names_a_main_contact,
    reg_8_main_contact_unchanged, reg_9_applied_now_only_where_qualified)
"""Checked once the gates pass, every one: the rejection names all that fail, in order."""


def decide_registration(world: World, cmd: CardRegistrationRequested, book: PolicyBook,
                        now: datetime, *, acted_at: datetime | None = None,
                        confirmed: bool = False, by_city: bool = False) -> Decision:
    """Decide one 利用者登録 (``confirmed``: the person already confirmed it, REG-11;
    ``by_city``: the city's staff confirmed it after checking with the company, so the
    card's authentication is the one checked when the request was held (PIN-2), not a
    new one: nobody holds the card now)."""
    def reject(vs: list[RuleViolation]) -> Decision:
        return rejected(type(cmd).message_type, cmd.procuring_entity, vs, domain=cmd.domain,
                        user_id=cmd.user_id, card=cmd.card.ref)

    policy = book.get(cmd.procuring_entity, cmd.system)
    if policy is None:
        return reject([violation("unknown-entity", entity=cmd.procuring_entity,
                                 system=cmd.system.label_ja, system_en=cmd.system.value)])
    r = Registration(world, cmd, book, policy, now, acted_at or now)
    for gate in GATES:
        if by_city and gate is pin_2_card_just_authenticated:
            continue
        if (first := gate(r)) is not None:
            return reject([first])
    q = world.qualification(cmd.procuring_entity, cmd.domain, cmd.user_id)
    assert q is not None  # reg_3_qualification_found found it
    r.q, r.contractor = q, world.contractors.get((policy.network, cmd.user_id))
    r.targets = _targets(world, cmd, book, policy.network)
    if vs := all_failing(CHECKS, r):
        return reject(vs)
    if not confirmed and policy.reissued_card is ReissuedCardPolicy.RENEWAL:
        held = _held_as_reissue(world, cmd, policy.network, q.corporate_number)
        if held is not None:
            return held
    return _accept(world, cmd, book, policy, now=now, targets=r.targets, q=q,
                   contractor=r.contractor)


def _targets(world: World, cmd: CardRegistrationRequested, book: PolicyBook,
             network: str) -> tuple[str, ...]:
    """REG-9: the other entities of the network where the company is qualified."""
    card = world.cards.get(cmd.card.key)
    return tuple(
        e for e in book.entities_in(network)
        if e != cmd.procuring_entity
        and world.qualification(e, cmd.domain, cmd.user_id) is not None
        and not (card is not None and card.active_at(e, cmd.domain)))


def _held_as_reissue(world: World, cmd: CardRegistrationRequested, network: str,
                     corporate_number: str | None) -> Decision | None:
    """REG-11 (e-contract): same company, new card → ask before registering."""
    existing = {c.user_id for c in world.contractors_like(
        network, trade_name_key(cmd.trade_name), corporate_number)}
    own = world.contractors.get((network, cmd.user_id))
    if own is not None and any(
            c.active_at(cmd.procuring_entity, cmd.domain) and c.facts.key != cmd.card.key
            for c in world.cards_of(network, cmd.user_id)):
        existing.add(own.user_id)
    elif own is not None:
        existing.discard(own.user_id)
    if not existing:
        return None
    ids = tuple(sorted(existing))
    reason = violation("reissue-confirm", ids=", ".join(ids))
    confirmation_id = deterministic_id("confirm", cmd.procuring_entity, cmd.domain,
                                       cmd.user_id, *cmd.card.key)
    event = fast.build(
        RegistrationNeedsConfirmation,
        confirmation_id=confirmation_id, procuring_entity=cmd.procuring_entity,
        domain=cmd.domain, user_id=cmd.user_id, card=cmd.card.ref, existing_user_ids=ids,
        reason=reason, held=cmd)
    return Decision(Outcome.NEEDS_CONFIRMATION, (event,), violations=(reason,))


def _accept(world: World, cmd: CardRegistrationRequested, book: PolicyBook,
            policy: EntityPolicy, *, now: datetime, targets: tuple[str, ...],
            q: QualificationRecord, contractor: Contractor | None) -> Decision:
    company_id = contractor.company_id if contractor else company_id_for(policy.network,
                                                                          cmd.user_id)
    company_name = contractor.company_name if contractor else q.trade_name
    contact = cmd.card_department_contact.to_contact()
    warning = low_validity_warning(cmd.card, policy, now)
    registered = fast.build(
        CardRegistered,
        procuring_entity=cmd.procuring_entity, network=policy.network, domain=cmd.domain,
        user_id=cmd.user_id, system=cmd.system, company_id=company_id,
        company_name=company_name, first_registration=contractor is None, card=cmd.card,
        department_name=cmd.department_name or company_name, card_department_contact=contact,
        representative_contact=(cmd.representative_contact.to_contact()
                                if contractor is None and cmd.representative_contact else None),
        warnings=(warning,) if warning else ())
    events: list[Payload] = [registered]
    mails = [notice_mail(MailKind.REGISTRATION, policy=policy, company_name=company_name,
                         company_id=company_id, user_id=cmd.user_id, contact=contact,
                         card=cmd.card,
                         seed=(cmd.procuring_entity, cmd.domain, *cmd.card.key))]
    accepted, refused = split_targets(world, book, policy.network, targets,
                                      domain=cmd.domain, user_id=cmd.user_id, card=cmd.card,
                                      now=now)
    next_batch = policy.next_batch(now)
    for target in accepted:
        immediate = target in cmd.apply_now_to
        events.append(fast.build(
            PropagationScheduled,
            propagation_id=deterministic_id("propagate", PropagationKind.REGISTRATION,
                                            cmd.procuring_entity, target, cmd.domain,
                                            *cmd.card.key),
            kind=PropagationKind.REGISTRATION, target_entity=target,
            due_at=now if immediate else next_batch, immediate=immediate, source=registered))
    # REG-9 with REG-5, REG-6 ...: where the target's own policy refuses the card, that
    # entity gets its rejection and the person a mail; the registration here stands.
    card = world.cards.get(cmd.card.key)
    usable = [cmd.procuring_entity, *accepted, *(
        e for e in book.entities_in(policy.network)
        if card is not None and e != cmd.procuring_entity and card.active_at(e, cmd.domain))]
    for target, why in refused:
        rejected_there, mail = refusal(
            book, source_entity=cmd.procuring_entity, target=target, network=policy.network,
            domain=cmd.domain, user_id=cmd.user_id, command_type=type(cmd).message_type,
            card=cmd.card, violations=why, contact=contact, company_name=company_name,
            company_id=company_id, usable_at=sorted(set(usable), key=usable.index),
            seed=("refused", cmd.procuring_entity, target, cmd.domain, *cmd.card.key))
        events.append(rejected_there)
        mails.append(mail)
    return Decision(Outcome.ACCEPTED, tuple(events), tuple(mails),
                    warnings=(warning,) if warning else ())
