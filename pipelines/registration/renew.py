"""ICカード更新 rules (RNW-1 … RNW-9): pure decisions.

Renewal moves a user ID from its still-valid old card (RNW-1) to a new card of the
same CA (RNW-5), for the same user ID (RNW-2), company (RNW-3) and a correct holder
(RNW-4), both cards authenticated old first (RNW-6). Contacts are inherited and the
old card becomes unusable (RNW-7); the person chooses whether it reaches the other
entities (RNW-8); a mail confirms it (RNW-9).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from pipelines.registration.common import (
    Decision,
    Outcome,
    authentication_violation,
    company_id_for,
    deterministic_id,
    notice_mail,
    rejected,
    validity_violation,
    window_violation,
)
from pipelines.registration.policy import EntityPolicy, PolicyBook
from pipelines.registration.targets import refusal, split_targets
from pipelines.registration.texts import violation
from pipelines.registration.world import World, holder_matches
from schemas import fast
from schemas.envelope import JST
from schemas.mail import MailKind
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

__all__ = ["decide_renewal", "same_issuer"]

_DN_SPACES = re.compile(r"\s*([,=+])\s*")


@lru_cache(maxsize=1024)
def _dn_key(dn: str) -> str:
    return _DN_SPACES.sub(lambda m: m.group(1), dn).casefold()


def same_issuer(a: str, b: str) -> bool:
    """RNW-5: the same certification authority (DNs compared without spacing and case)."""
    return _dn_key(a) == _dn_key(b)


def _auth_order(cmd: CardRenewalRequested, policy: EntityPolicy,
                now: datetime) -> RuleViolation | None:
    """RNW-6: both cards authenticated with their PINs, the old one first."""
    for label, label_en, card in (("旧ICカード", "old card", cmd.old_card),
                                  ("新ICカード", "new card", cmd.new_card)):
        if authentication_violation(card, policy, now) is not None:
            return violation("renew-auth", which=f"{label}の本人確認がありません",
                             which_en=f"the {label_en} was not authenticated")
    old_at, new_at = cmd.old_card.authenticated_at, cmd.new_card.authenticated_at
    if old_at is not None and new_at is not None and new_at < old_at:
        return violation("renew-auth", which="新ICカードが先に認証されました",
                         which_en="the new card was authenticated first")
    return None


def _company_differences(cmd: CardRenewalRequested, holder_change_ok: bool) -> list[str]:
    old, new = cmd.old_card, cmd.new_card
    diffs = []
    if not holder_change_ok and name_key(old.holder_name) != name_key(new.holder_name):
        diffs.append("名義人|holder")
    if name_key(old.holder_address) != name_key(new.holder_address):
        diffs.append("住所|address")
    if (old.holder_organization and new.holder_organization
            and name_key(old.holder_organization) != name_key(new.holder_organization)):
        diffs.append("企業名称|company name")
    return diffs


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
    first = window_violation(policy, acted_at or now) or _auth_order(cmd, policy, now)
    if first is not None:
        return reject([first])
    old = world.cards.get(cmd.old_card.key)
    if now > cmd.old_card.not_after:
        return reject([violation("old-card-expired", end=show_date(cmd.old_card.not_after),
                                 end_en=show_date_en(cmd.old_card.not_after),
                                 field="old_card")])
    if old is None or old.network != policy.network:
        return reject([violation("old-card-unknown", field="old_card", entity=policy.name,
                                 domain=cmd.domain.label_ja, domain_en=cmd.domain.value)])
    if old.user_id != cmd.user_id:
        return reject([violation("user-id-changed", user_id=cmd.user_id,
                                 old_user_id=old.user_id, field="user_id")])
    reg = old.registrations.get((cmd.procuring_entity, cmd.domain))
    if reg is None:
        return reject([violation("old-card-unknown", field="old_card", entity=policy.name,
                                 domain=cmd.domain.label_ja, domain_en=cmd.domain.value)])
    if not old.active_at(cmd.procuring_entity, cmd.domain):
        return reject([violation("old-card-revoked", field="old_card")])
    q = world.qualification(cmd.procuring_entity, cmd.domain, cmd.user_id)
    if q is None or (q.qualified_until is not None
                     and q.qualified_until < now.astimezone(JST).date()):
        return reject([violation("user-id-lapsed", user_id=cmd.user_id, field="user_id")])
    vs: list[RuleViolation] = []
    diffs = _company_differences(cmd, policy.renewal_allows_holder_change)
    if diffs:
        vs.append(violation("company-changed", what="・".join(d.split("|")[0] for d in diffs),
                            what_en=", ".join(d.split("|")[1] for d in diffs),
                            field="new_card"))
    if not holder_matches(cmd.new_card.holder_name, q, policy.legal_representative_may_hold_card):
        vs.append(violation("new-holder", holder=cmd.new_card.holder_name,
                            contractor=q.contractor_name, field="new_card.holder_name"))
    if not same_issuer(cmd.old_card.issuer, cmd.new_card.issuer):
        vs.append(violation("other-ca", field="new_card.issuer"))
    if (v := validity_violation(cmd.new_card, now)) is not None:
        vs.append(v.model_copy(update={"field": "new_card"}))
    if cmd.new_card.key in world.cards:
        holder = world.cards[cmd.new_card.key]
        key = "card-other-user" if holder.user_id != cmd.user_id else "card-already"
        vs.append(violation(key, field="new_card"))
    elsewhere = tuple(e for e in book.entities_in(policy.network)
                      if e != cmd.procuring_entity and old.active_at(e, cmd.domain))
    vs.extend(violation("propagate-target", rule="RNW-8", target=target, field="apply_now_to")
              for target in cmd.apply_now_to if target not in elsewhere)
    if vs:
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
