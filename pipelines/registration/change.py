"""利用者変更 rules (CHG-1 … CHG-4): pure decisions.

A change touches the contacts of one registered card in one domain, after the person
authenticated with that card (CHG-1, CHG-2); a card renewed away is no longer usable
for it (RNW-7). The person chooses whether it reaches the other entities (CHG-3, next
day unless applied at once), and a mail to the ICカード利用部署 address confirms it
(CHG-4, NTF-1).
"""

from __future__ import annotations

from datetime import datetime

from pipelines.registration.common import (
    Decision,
    Outcome,
    authentication_violation,
    deterministic_id,
    notice_mail,
    rejected,
    window_violation,
)
from pipelines.registration.policy import PolicyBook
from pipelines.registration.register import email_violation
from pipelines.registration.texts import violation
from pipelines.registration.world import RegistrationStatus, World
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

__all__ = ["decide_change"]

_DOMAIN_EN = {Domain.WORKS: "works", Domain.GOODS: "goods"}


def _where(entity_name: str, domain: Domain) -> dict[str, str]:
    return {"entity": entity_name, "domain": domain.label_ja, "domain_en": _DOMAIN_EN[domain]}


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
    first = window_violation(policy, acted_at or now)
    if first is None and (auth := authentication_violation(cmd.card, policy, now)) is not None:
        first = auth.model_copy(update={"rule_id": "CHG-1"})
    if first is not None:
        return reject([first])
    card = world.cards.get(cmd.card.key)
    if card is None or card.user_id != cmd.user_id or card.network != policy.network:
        return reject([violation("change-not-registered", field="card",
                                 **_where(policy.name, cmd.domain))])
    reg = card.registrations.get((cmd.procuring_entity, cmd.domain))
    if reg is not None and reg.status is RegistrationStatus.REVOKED:
        # Renewed away: the old card is no longer usable (RNW-7), not "unregistered".
        return reject([violation("change-card-revoked", field="card")])
    if not card.active_at(cmd.procuring_entity, cmd.domain):
        other = any(card.active_at(cmd.procuring_entity, d) for d in Domain if d != cmd.domain)
        key = "change-other-domain" if other else "change-not-registered"
        return reject([violation(key, field="domain", **_where(policy.name, cmd.domain))])
    vs: list[RuleViolation] = []
    if not cmd.card.not_before <= now <= cmd.card.not_after:
        vs.append(violation("change-card-invalid", end=show_date(cmd.card.not_after),
                            end_en=show_date_en(cmd.card.not_after), field="card"))
    emails = (email_violation(cmd.card_department_contact, "", "", "card_department_contact",
                              key="change-email-twice"),
              email_violation(cmd.representative_contact, "代表窓口", "main contact",
                              "representative_contact"))
    vs.extend(v for v in emails if v is not None)
    registered_at = tuple(e for e in book.entities_in(policy.network)
                          if e != cmd.procuring_entity and card.active_at(e, cmd.domain))
    vs.extend(violation("propagate-target", rule="CHG-3", target=target, field="apply_now_to")
              for target in cmd.apply_now_to if target not in registered_at)
    if vs:
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
