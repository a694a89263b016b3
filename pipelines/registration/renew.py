"""ICカード更新 rules (RNW-1 … RNW-9): pure decisions.

Renewal moves a user ID from its still-valid old card (RNW-1) to a new card of the
same CA (RNW-5), for the same user ID (RNW-2), company (RNW-3) and a correct holder
(RNW-4), both cards authenticated old first (RNW-6). Contacts are inherited and the
old card becomes unusable (RNW-7); the person chooses whether it reaches the other
entities (RNW-8); a mail confirms it (RNW-9). :func:`decide_renewal` runs the
:data:`GATES`, then every one of the :data:`CHECKS`, each a function named after its rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

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
    notice_mail,
    rejected,
    validity_violation,
    win_1_within_service_window,
)
from pipelines.registration.policy import EntityPolicy, PolicyBook
from pipelines.registration.targets import refusal, split_targets
from pipelines.registration.texts import violation
from pipelines.registration.world import Card, CardRegistration, World, holder_matches
from schemas import fast
from schemas.envelope import JST
from schemas.mail import MailKind
from schemas.qualification import QualificationRecord
from schemas.registration import (
    CardRenewalRequested,
    CardRenewed,
    CardRevoked,
    PropagationKind,
    PropagationScheduled,
    RevocationReason,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import name_key, show_date, show_date_en

__all__ = ["CHECKS", "GATES", "Renewal", "decide_renewal", "same_issuer"]

_DN_SPACES = re.compile(r"\s*([,=+])\s*")


@lru_cache(maxsize=1024)
def _dn_key(dn: str) -> str:
    return _DN_SPACES.sub(lambda m: m.group(1), dn).casefold()


def same_issuer(a: str, b: str) -> bool:
    """RNW-5: the same certification authority (DNs compared without spacing and case)."""
    return _dn_key(a) == _dn_key(b)


def _company_differences(cmd: CardRenewalRequested,
                         holder_change_ok: bool) -> list[tuple[str, str]]:
    """What differs between the cards' company facts, in Japanese and English."""
    old, new = cmd.old_card, cmd.new_card
    diffs = []
    if not holder_change_ok and name_key(old.holder_name) != name_key(new.holder_name):
        diffs.append(("名義人", "holder"))
    if name_key(old.holder_address) != name_key(new.holder_address):
        diffs.append(("住所", "address"))
    if (old.holder_organization and new.holder_organization
            and name_key(old.holder_organization) != name_key(new.holder_organization)):
        diffs.append(("企業名称", "company name"))
    return diffs


@dataclass(slots=True)
class Renewal:
    """One ICカード更新 and what its checks look at."""

    world: World
    cmd: CardRenewalRequested
    book: PolicyBook
    policy: EntityPolicy
    now: datetime
    acted_at: datetime
    old: Card | None
    """The old card as the registry knows it, if it does."""
    registration: CardRegistration | None
    """The old card's registration at this entity and domain, if it has one."""
    # Set once the gates pass (the old card is active here, the user ID qualified):
    q: QualificationRecord = field(init=False)
    elsewhere: tuple[str, ...] = field(init=False)
    """RNW-8: the other entities where the old card is registered in this domain."""


def rnw_6_both_cards_authenticated_old_first(r: Renewal) -> RuleViolation | None:
    """RNW-6: both cards authenticated with their PINs, the old one first."""
    cmd = r.cmd
    for label, label_en, card in (("旧ICカード", "old card", cmd.old_card),
                                  ("新ICカード", "new card", cmd.new_card)):
        if authentication_violation(card, r.policy, r.now) is not None:
            return violation("renew-auth", which=f"{label}の本人確認がありません",
                             which_en=f"the {label_en} was not authenticated")
    old_at, new_at = cmd.old_card.authenticated_at, cmd.new_card.authenticated_at
    if old_at is not None and new_at is not None and new_at < old_at:
        return violation("renew-auth", which="新ICカードが先に認証されました",
                         which_en="the new card was authenticated first")
    return None


def rnw_1_old_card_not_expired(r: Renewal) -> RuleViolation | None:
    old = r.cmd.old_card
    if r.now > old.not_after:
        return violation("old-card-expired", end=show_date(old.not_after),
                         end_en=show_date_en(old.not_after), field="old_card")
    return None


def _old_card_unknown(r: Renewal) -> RuleViolation:
    return violation("old-card-unknown", field="old_card", entity=r.policy.name,
                     domain=r.cmd.domain.label_ja, domain_en=r.cmd.domain.value)


def rnw_1_old_card_known(r: Renewal) -> RuleViolation | None:
    """RNW-1: the old card is registered in this network."""
    if r.old is None or r.old.network != r.policy.network:
        return _old_card_unknown(r)
    return None


def rnw_2_same_user_id(r: Renewal) -> RuleViolation | None:
    if r.old is not None and r.old.user_id != r.cmd.user_id:
        return violation("user-id-changed", user_id=r.cmd.user_id, old_user_id=r.old.user_id,
                         field="user_id")
    return None


def rnw_1_old_card_registered_here(r: Renewal) -> RuleViolation | None:
    """RNW-1: the old card is registered at this entity in this domain."""
    return _old_card_unknown(r) if r.registration is None else None


def rnw_7_old_card_still_usable_here(r: Renewal) -> RuleViolation | None:
    """RNW-7: not already replaced or revoked here."""
    if r.old is not None and not r.old.active_at(r.cmd.procuring_entity, r.cmd.domain):
        return violation("old-card-revoked", field="old_card")
    return None


def rnw_2_user_id_qualified(r: Renewal) -> RuleViolation | None:
    """RNW-2: the user ID still has current 資格審査情報 here."""
    q = r.world.qualification(r.cmd.procuring_entity, r.cmd.domain, r.cmd.user_id)
    if q is None or (q.qualified_until is not None
                     and q.qualified_until < r.now.astimezone(JST).date()):
        return violation("user-id-lapsed", user_id=r.cmd.user_id, field="user_id")
    return None


def rnw_3_same_company(r: Renewal) -> Found:
    """RNW-3: the new card names the same company (holder where required, address, name)."""
    diffs = _company_differences(r.cmd, r.policy.renewal_allows_holder_change)
    if not diffs:
        return None
    return violation("company-changed", what="・".join(ja for ja, _ in diffs),
                     what_en=", ".join(en for _, en in diffs), field="new_card")


def rnw_4_new_holder_is_the_contractor(r: Renewal) -> Found:
    if holder_matches(r.cmd.new_card.holder_name, r.q,
                      r.policy.legal_representative_may_hold_card):
        return None
    return violation("new-holder", holder=r.cmd.new_card.holder_name,
                     contractor=r.q.contractor_name, field="new_card.holder_name")


def rnw_5_same_certification_authority(r: Renewal) -> Found:
    if same_issuer(r.cmd.old_card.issuer, r.cmd.new_card.issuer):
        return None
    return violation("other-ca", field="new_card.issuer")


def reg_6_new_card_valid(r: Renewal) -> Found:
    found = validity_violation(r.cmd.new_card, r.now)
    return None if found is None else found.model_copy(update={"field": "new_card"})


def reg_1_new_card_unused(r: Renewal) -> Found:
    """REG-1: the new card is not registered yet, to anyone."""
    holder = r.world.cards.get(r.cmd.new_card.key)
    if holder is None:
        return None
    key = "card-other-user" if holder.user_id != r.cmd.user_id else "card-already"
    return violation(key, field="new_card")


def rnw_8_applied_now_only_where_registered(r: Renewal) -> Found:
    return [violation("propagate-target", rule="RNW-8", target=target, field="apply_now_to")
            for target in r.cmd.apply_now_to if target not in r.elsewhere] or None


GATES: tuple[Gate[Renewal], ...] = (
    win_1_within_service_window, rnw_6_both_cards_authenticated_old_first,
    rnw_1_old_card_not_expired, rnw_1_old_card_known, rnw_2_same_user_id,
    rnw_1_old_card_registered_here, rnw_7_old_card_still_usable_here, rnw_2_user_id_qualified)
"""Checked in order; the first that fails is the only answer."""

CHECKS: tuple[Check[Renewal], ...] = (
    rnw_3_same_company, rnw_4_new_holder_is_the_contractor,
    rnw_5_same_certification_authority, reg_6_new_card_valid, reg_1_new_card_unused,
    rnw_8_applied_now_only_where_registered)
"""Checked once the gates pass, every one: the rejection names all that fail, in order."""


def decide_renewal(world: World, cmd: CardRenewalRequested, book: PolicyBook, now: datetime,
                   *, acted_at: datetime | None = None) -> Decision:
    """Decide one ICカード更新."""
    old_ref, new_ref = cmd.old_card.ref, cmd.new_card.ref

    def reject(vs: list[RuleViolation]) -> Decision:
        return rejected(type(cmd).message_type, cmd.procuring_entity, vs, domain=cmd.domain,
                        user_id=cmd.user_id, card=new_ref)

    policy = book.get(cmd.procuring_entity, cmd.system)
    if policy is None:
        return reject([violation("unknown-entity", entity=cmd.procuring_entity,
                                 system=cmd.system.label_ja, system_en=cmd.system.value)])
    old = world.cards.get(cmd.old_card.key)
    reg = old.registrations.get((cmd.procuring_entity, cmd.domain)) if old else None
    r = Renewal(world, cmd, book, policy, now, acted_at or now, old, reg)
    for gate in GATES:
        if (first := gate(r)) is not None:
            return reject([first])
    q = world.qualification(cmd.procuring_entity, cmd.domain, cmd.user_id)
    # The gates found them: rnw_1_old_card_known, rnw_1_old_card_registered_here,
    # rnw_2_user_id_qualified.
    assert old is not None
    assert reg is not None
    assert q is not None
    r.q = q
    elsewhere = r.elsewhere = tuple(e for e in book.entities_in(policy.network)
                                    if e != cmd.procuring_entity and old.active_at(e, cmd.domain))
    if vs := all_failing(CHECKS, r):
        return reject(vs)
    contractor = world.contractors.get((policy.network, cmd.user_id))
    company_id = (contractor.company_id if contractor
                  else company_id_for(policy.network, cmd.user_id))
    renewed = fast.build(
        CardRenewed,
        procuring_entity=cmd.procuring_entity, network=policy.network, domain=cmd.domain,
        user_id=cmd.user_id, company_id=company_id, old_card=old_ref,
        new_card=cmd.new_card)
    revoked = fast.build(
        CardRevoked,
        procuring_entity=cmd.procuring_entity, network=policy.network, domain=cmd.domain,
        user_id=cmd.user_id, card=old_ref, reason=RevocationReason.RENEWED,
        replaced_by=new_ref)
    events: list[Payload] = [renewed, revoked]
    targets = elsewhere if cmd.apply_to_other_entities else cmd.apply_now_to
    company_name = contractor.company_name if contractor else q.trade_name
    mails = [notice_mail(MailKind.RENEWAL, policy=policy, company_name=company_name,
                         company_id=company_id, user_id=cmd.user_id, contact=reg.contact,
                         card=new_ref,
                         seed=(cmd.procuring_entity, cmd.domain, *cmd.new_card.key))]
    # RNW-8 with RNW-3, RNW-4, REG-6: a target whose own policy refuses the new card gets
    # its rejection and keeps the old card; the renewal here stands.
    targets, refused = split_targets(world, book, policy.network, targets,
                                     domain=cmd.domain, user_id=cmd.user_id,
                                     card=cmd.new_card, now=now, renewed_from=cmd.old_card)
    for target in targets:
        immediate = target in cmd.apply_now_to
        events.append(fast.build(
            PropagationScheduled,
            propagation_id=deterministic_id("propagate", PropagationKind.RENEWAL,
                                            cmd.procuring_entity, target, cmd.domain,
                                            *cmd.old_card.key, *cmd.new_card.key),
            kind=PropagationKind.RENEWAL, target_entity=target,
            due_at=now if immediate else policy.next_batch(now), immediate=immediate,
            source=renewed))
    usable = [cmd.procuring_entity, *targets]
    for target, why in refused:
        rejected_there, mail = refusal(
            book, source_entity=cmd.procuring_entity, target=target, network=policy.network,
            domain=cmd.domain, user_id=cmd.user_id, command_type=type(cmd).message_type,
            card=cmd.new_card, violations=why, contact=reg.contact, company_name=company_name,
            company_id=company_id, usable_at=usable,
            seed=("refused", cmd.procuring_entity, target, cmd.domain, *cmd.old_card.key,
                  *cmd.new_card.key))
        events.append(rejected_there)
        mails.append(mail)
    return Decision(Outcome.ACCEPTED, tuple(events), tuple(mails))
