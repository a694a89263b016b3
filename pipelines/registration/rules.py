"""The registration pipeline's pure rules: (world, command, policy, now) → decision.

One entry point, :func:`decide`, for every command of the pipeline: 利用者登録
(REG-1 … REG-11), its explicit confirmation (REG-11), 利用者変更 (CHG-1 … CHG-4) and
ICカード更新 (RNW-1 … RNW-9); :func:`decide_propagation` applies one pending
propagation at its target entity (REG-9, CHG-3, RNW-8). Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pipelines.registration.change import decide_change
from pipelines.registration.common import Decision, Outcome, deterministic_id, rejected
from pipelines.registration.policy import PolicyBook, WindowStop, default_policy_book
from pipelines.registration.register import decide_registration
from pipelines.registration.renew import decide_renewal
from pipelines.registration.targets import refusal, target_violations
from pipelines.registration.texts import violation
from pipelines.registration.world import PendingPropagation, PropagationStatus, World, apply
from schemas import fast
from schemas.mail import MailKind, MailRequested
from schemas.registration import (
    CardFacts,
    CardRegistered,
    CardRegistrationRequested,
    CardRenewalRequested,
    CardRenewed,
    CardRevoked,
    Contact,
    ContactChanged,
    ContactChangeRequested,
    HeldRegistrationRejected,
    PropagationScheduled,
    RegistrationConfirmed,
    RegistrationRejected,
    RevocationReason,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation

__all__ = [
    "COMMANDS",
    "Decision",
    "Outcome",
    "apply_decision",
    "decide",
    "decide_propagation",
    "run_pending",
]

COMMANDS: tuple[type[Payload], ...] = (
    CardRegistrationRequested, RegistrationConfirmed, HeldRegistrationRejected,
    ContactChangeRequested, CardRenewalRequested)
"""The command types :func:`decide` understands."""


def decide(world: World, command: Payload, book: PolicyBook, now: datetime, *,
           acted_at: datetime | None = None) -> Decision:
    """Decide one command against ``world`` (not changed: apply the events to evolve it).

    ``now`` is when the hub decides (card validity, authentication age); ``acted_at`` is
    when the person acted (the service window, WIN-1), ``now`` if not given.
    """
    # Commands are the registry's own classes, never subclassed: their exact type decides
    # (isinstance on a pydantic model class goes through ABCMeta for every miss).
    if type(command) is CardRegistrationRequested:
        return decide_registration(world, command, book, now, acted_at=acted_at)
    if type(command) is ContactChangeRequested:
        return decide_change(world, command, book, now, acted_at=acted_at)
    if type(command) is CardRenewalRequested:
        return decide_renewal(world, command, book, now, acted_at=acted_at)
    if type(command) is RegistrationConfirmed:
        return _decide_confirmation(world, command, book, now, acted_at)
    if type(command) is HeldRegistrationRejected:
        return _decide_held_rejection(world, command, book)
    raise TypeError(f"{type(command).__name__} is not a registration command")


def _decide_confirmation(world: World, cmd: RegistrationConfirmed, book: PolicyBook,
                         now: datetime, acted_at: datetime | None) -> Decision:
    """REG-11: run the held registration, with the card freshly authenticated again."""
    pending = world.confirmations.get(cmd.confirmation_id)
    held = pending.command if pending else None
    if (held is None or held.card.key != cmd.card.key or held.user_id != cmd.user_id
            or held.procuring_entity != cmd.procuring_entity or held.domain != cmd.domain):
        return rejected(type(cmd).message_type, cmd.procuring_entity,
                        [violation("no-confirmation", field="confirmation_id")],
                        domain=cmd.domain, user_id=cmd.user_id, card=cmd.card.ref)
    return decide_registration(world, held.model_copy(update={"card": cmd.card}), book, now,
                               acted_at=acted_at, confirmed=True,
                               by_city=cmd.confirmed_by is not None)


def _decide_held_rejection(world: World, cmd: HeldRegistrationRejected,
                           book: PolicyBook) -> Decision:
    """REG-11: the city closes a held registration as rejected. The answer is a
    RegistrationRejected naming REG-11 that drops the held request, and a mail to the
    ICカード利用部署 address the applicant gave saying so and what to do next."""
    pending = world.confirmations.get(cmd.confirmation_id)
    held = pending.command if pending else None
    if (held is None or held.user_id != cmd.user_id
            or held.procuring_entity != cmd.procuring_entity or held.domain != cmd.domain):
        return rejected(type(cmd).message_type, cmd.procuring_entity,
                        [violation("no-confirmation", field="confirmation_id")],
                        domain=cmd.domain, user_id=cmd.user_id)
    reason = violation("held-rejected")
    event = fast.build(RegistrationRejected, command_type=held.message_type,
                       procuring_entity=held.procuring_entity, domain=held.domain,
                       user_id=held.user_id, card=held.card.ref, violations=(reason,),
                       confirmation_id=cmd.confirmation_id)
    policy = book.get(held.procuring_entity, held.system)
    contact = held.card_department_contact
    mail = fast.build(MailRequested, mail_id=deterministic_id(
        "mail", MailKind.GENERIC, "held-rejected", str(cmd.confirmation_id)),
        kind=MailKind.GENERIC, to=(contact.email,), values={
            "system_name": policy.system.label_ja if policy else "",
            "subject": "利用者登録の確認結果のお知らせ（登録しませんでした）",
            "body_1": f"{held.trade_name} {contact.person_name} 様",
            "body_2": f"{policy.name if policy else held.procuring_entity}は、確認待ちとなって"
                      f"いた利用者登録（ユーザID {held.user_id}）を、御社に確認のうえ登録しない"
                      "ことにしました。",
            "body_3": f"[{reason.rule_id}] {reason.message_ja}",
            "body_4": reason.next_step_ja,
            "body_5": f"[{reason.rule_id}] {reason.message_en} {reason.next_step_en}"})
    return Decision(Outcome.REJECTED, (event,), mails=(mail,), violations=(reason,))


def decide_propagation(world: World, pending: PendingPropagation, now: datetime,
                       book: PolicyBook | None = None) -> tuple[tuple[Payload, ...], str]:
    """What one propagation does at its target: the events, or none and why (REG-9).

    Checked again at the target when it runs, because the night may have changed
    things: the qualification may have lapsed, the card expired or been registered.
    The target's own policy is asked again too (REG-5, REG-6, RNW-3, RNW-4): where it
    refuses, the events are the target's ``RegistrationRejected`` and the mail to the
    ICカード利用部署 address, and nothing is applied there.
    """
    book = book or default_policy_book()
    sched = pending.scheduled
    src, target = sched.source, sched.target_entity
    here = {"procuring_entity": target, "propagated_from": src.procuring_entity}
    q = world.qualification(target, src.domain, src.user_id)
    if q is None:
        return (), "not qualified at the target"
    target_policy = book.member(target, src.network)
    if isinstance(src, CardRegistered):
        card = world.cards.get(src.card.key)
        if now > src.card.not_after:
            return (), "card expired"
        if card is not None and (card.user_id != src.user_id or card.revoked_anywhere()):
            return (), "card no longer usable"
        if card is not None and card.active_at(target, src.domain):
            return (), "already registered at the target"
        if target_policy is not None and (vs := target_violations(
                world, target_policy, domain=src.domain, user_id=src.user_id, card=src.card,
                now=now)):
            return _refused(world, book, sched, card=src.card, vs=vs,
                            contact=src.card_department_contact,
                            company_name=src.company_name, company_id=src.company_id)
        return (src.model_copy(update={**here, "first_registration": False,
                                       "representative_contact": None, "warnings": ()}),), ""
    if isinstance(src, ContactChanged):
        card = world.cards.get(src.card.key)
        if card is None or not card.active_at(target, src.domain):
            return (), "card not registered at the target"
        return (src.model_copy(update=here),), ""
    old = world.cards.get(src.old_card.key)
    if old is None or not old.active_at(target, src.domain):
        return (), "old card not registered at the target"
    new = world.cards.get(src.new_card.key)
    if new is not None and new.user_id != src.user_id:
        return (), "new card belongs to another user ID"
    if target_policy is not None and (vs := target_violations(
            world, target_policy, domain=src.domain, user_id=src.user_id, card=src.new_card,
            now=now, renewed_from=old.facts)):
        contact = old.registrations[(target, src.domain)].contact
        contractor = world.contractors.get((src.network, src.user_id))
        return _refused(world, book, sched, card=src.new_card, vs=vs, contact=contact,
                        company_name=contractor.company_name if contractor else q.trade_name,
                        company_id=src.company_id)
    renewed: CardRenewed = src.model_copy(update=here)
    revoked = CardRevoked(
        procuring_entity=target, network=src.network, domain=src.domain, user_id=src.user_id,
        propagated_from=src.procuring_entity, card=src.old_card,
        reason=RevocationReason.RENEWED, replaced_by=src.new_card.ref)
    return (renewed, revoked), ""


def _refused(world: World, book: PolicyBook, sched: PropagationScheduled, *, card: CardFacts,
             vs: tuple[RuleViolation, ...], contact: Contact, company_name: str,
             company_id: str) -> tuple[tuple[Payload, ...], str]:
    src = sched.source
    known = world.cards.get(card.key)
    usable = [src.procuring_entity, *(
        e for e in book.entities_in(src.network)
        if known is not None and e != src.procuring_entity and known.active_at(e, src.domain))]
    rejected_there, mail = refusal(
        book, source_entity=src.procuring_entity, target=sched.target_entity,
        network=src.network, domain=src.domain, user_id=src.user_id,
        command_type=PropagationScheduled.message_type, card=card, violations=vs,
        contact=contact, company_name=company_name, company_id=company_id,
        usable_at=usable, seed=("refused", str(sched.propagation_id)))
    return (rejected_there, mail), "refused by the target's policy: " + ", ".join(
        sorted({v.rule_id for v in vs}))


def run_pending(world: World, pending: PendingPropagation, now: datetime,
                book: PolicyBook | None = None
                ) -> tuple[PendingPropagation, tuple[Payload, ...]]:
    """Apply one pending propagation to ``world``: its new state and the events (with the
    mail of a refusal, a ``MailRequested``, among them)."""
    events, note = decide_propagation(world, pending, now, book)
    for event in events:
        apply(world, event, now)
    applied = any(not isinstance(e, RegistrationRejected | MailRequested) for e in events)
    status = PropagationStatus.DONE if applied else PropagationStatus.SKIPPED
    updated = dataclasses.replace(pending, status=status, note=note)
    world.propagations[pending.scheduled.propagation_id] = updated
    return updated, events


def apply_decision(world: World, decision: Decision, now: datetime,
                   book: PolicyBook | None = None) -> list[Payload]:
    """Evolve ``world`` by a decision; every event to publish, in order.

    Propagations the person chose to apply at once (REG-9, CHG-3, RNW-8) are applied
    here too, in the same step as the command, not left to the nightly batch; a target
    that refuses then adds its rejection and mail (a ``MailRequested``) to the list.
    """
    book = book or default_policy_book()
    events = list(decision.events)
    for event in decision.events:
        apply(world, event, now)
    for event in decision.events:
        if isinstance(event, PropagationScheduled) and event.immediate:
            target = book.member(event.target_entity, event.source.network)
            if target is not None and target.maintenance_at(now, WindowStop.REGISTRATION):
                continue  # WIN-2: stays pending; the batch applies it after the window
            _, done = run_pending(world, world.propagations[event.propagation_id], now, book)
            events.extend(done)
    return events
