"""Each propagation target's own policy (REG-9, CHG-3, RNW-8 with REG-3, REG-5, REG-6,
RNW-3 and RNW-4): a card reaches another entity of the network only where that entity
would have accepted it directly.

:func:`target_violations` is asked twice: when the propagation is decided (the command's
own decision), and again when it is applied (the nightly batch or "at once"), because
the night may change the qualification or the card. A target that refuses gets
:func:`refusal`: a ``RegistrationRejected`` for that entity (``propagated_from`` set, so
it is not the answer to the person's request, which stands at the source) and a mail to
the ICカード利用部署 address saying where the card is usable and where it is not (NTF-1).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pipelines.registration.common import deterministic_id, validity_violation
from pipelines.registration.policy import EntityPolicy, PolicyBook
from pipelines.registration.texts import violation
from pipelines.registration.world import World, holder_matches
from schemas import fast
from schemas.envelope import JST
from schemas.mail import MailKind, MailRequested
from schemas.registration import CardFacts, Contact, Domain, RegistrationRejected
from schemas.rejection import RuleViolation
from schemas.text import name_key, show_date, show_date_en

__all__ = ["entity_label", "refusal", "split_targets", "target_violations"]


def target_violations(world: World, policy: EntityPolicy, *, domain: Domain, user_id: str,
                      card: CardFacts, now: datetime,
                      renewed_from: CardFacts | None = None) -> tuple[RuleViolation, ...]:
    """What ``policy``'s entity says about ``card`` for ``user_id`` there, as if the person
    had registered it (or, with ``renewed_from``, renewed to it) at that entity directly.

    Only what varies by entity or by time is asked: the qualification there (REG-3), the
    holder (REG-5, RNW-4 by the entity's legal-representative policy), a change of holder
    at renewal (RNW-3 by the entity's policy) and the card's validity now (REG-6). Not
    being qualified there at all is no refusal: the entity is then no target (REG-9).
    """
    q = world.qualification(policy.code, domain, user_id)
    if q is None:
        return ()
    found: list[RuleViolation] = []
    if q.qualified_until is not None and q.qualified_until < now.astimezone(JST).date():
        found.append(violation("lapsed", until=show_date(q.qualified_until),
                               until_en=show_date_en(q.qualified_until)))
    rep = policy.legal_representative_may_hold_card
    if renewed_from is None:
        if not holder_matches(card.holder_name, q, rep):
            found.append(violation(
                "holder", holder=card.holder_name, contractor=q.contractor_name,
                rep_ja="（法人の代表者名義も可）" if rep else "",
                rep_en=" (or the legal representative's)" if rep else "",
                field="card.holder_name"))
    else:
        if (not policy.renewal_allows_holder_change
                and name_key(renewed_from.holder_name) != name_key(card.holder_name)):
            found.append(violation("company-changed", what="名義人", what_en="holder",
                                   field="new_card"))
        if not holder_matches(card.holder_name, q, rep):
            found.append(violation("new-holder", holder=card.holder_name,
                                   contractor=q.contractor_name, field="new_card.holder_name"))
    if (v := validity_violation(card, now)) is not None:
        found.append(v)
    return tuple(found)


def split_targets(world: World, book: PolicyBook, network: str, targets: Iterable[str], *,
                  domain: Domain, user_id: str, card: CardFacts, now: datetime,
                  renewed_from: CardFacts | None = None,
                  ) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[RuleViolation, ...]], ...]]:
    """The targets whose own policy accepts the card, and those refusing it with why."""
    accepted: list[str] = []
    refused: list[tuple[str, tuple[RuleViolation, ...]]] = []
    for target in targets:
        policy = book.member(target, network)
        vs = () if policy is None else target_violations(
            world, policy, domain=domain, user_id=user_id, card=card, now=now,
            renewed_from=renewed_from)
        if vs:
            refused.append((target, vs))
        else:
            accepted.append(target)
    return tuple(accepted), tuple(refused)


def entity_label(book: PolicyBook, network: str, entity: str, domain: Domain) -> str:
    """「川越市（工事）」: an entity and domain as the mail names them."""
    policy = book.member(entity, network)
    return f"{policy.name if policy else entity}（{domain.label_ja}）"


def refusal(book: PolicyBook, *, source_entity: str, target: str, network: str,
            domain: Domain, user_id: str, command_type: str, card: CardFacts,
            violations: tuple[RuleViolation, ...], contact: Contact, company_name: str,
            company_id: str, usable_at: Iterable[str],
            seed: tuple[object, ...]) -> tuple[RegistrationRejected, MailRequested]:
    """The target's rejection and the mail saying where the card is and is not usable."""
    rejected = fast.build(RegistrationRejected, command_type=command_type,
                          procuring_entity=target, domain=domain, user_id=user_id,
                          card=card.ref, violations=violations, propagated_from=source_entity)
    policy = book.member(target, network)
    usable = "、".join(entity_label(book, network, e, domain) for e in usable_at) or "なし"
    reasons = " / ".join(f"[{v.rule_id}] {v.message_ja} {v.next_step_ja}".strip()
                         for v in violations)
    values = {
        "system_name": policy.system.label_ja if policy else "",
        "procuring_entity_name": policy.name if policy else target,
        "company_name": company_name,
        "company_id": company_id,
        "user_id": user_id,
        "contact_name": contact.person_name,
        "contact_address": contact.address,
        "card_serial": card.serial,
        "card_issuer": card.issuer,
        "usable_at": usable,
        "not_usable_at": entity_label(book, network, target, domain),
        "reasons": reasons[:2000],
    }
    mail = fast.build(MailRequested,
                      mail_id=deterministic_id("mail", MailKind.PROPAGATION_REFUSED,
                                               fast.text_of(seed)),
                      kind=MailKind.PROPAGATION_REFUSED, to=(contact.email,), values=values)
    return rejected, mail
