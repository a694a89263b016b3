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
from pipelines.registration.common import Decision, Outcome, rejected
from pipelines.registration.policy import PolicyBook
from pipelines.registration.register import decide_registration
from pipelines.registration.renew import decide_renewal
from pipelines.registration.texts import violation
from pipelines.registration.world import PendingPropagation, PropagationStatus, World, apply
from schemas.registration import (
    CardRegistered,
    CardRegistrationRequested,
    CardRenewalRequested,
    CardRenewed,
    CardRevoked,
    ContactChanged,
    ContactChangeRequested,
    PropagationScheduled,
    RegistrationConfirmed,
    RevocationReason,
)
from schemas.registry import Payload

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
    CardRegistrationRequested, RegistrationConfirmed, ContactChangeRequested,
    CardRenewalRequested)
"""The command types :func:`decide` understands."""


def decide(world: World, command: Payload, book: PolicyBook, now: datetime, *,
           acted_at: datetime | None = None) -> Decision:
    """Decide one command against ``world`` (not changed: apply the events to evolve it).

    ``now`` is when the hub decides (card validity, authentication age); ``acted_at`` is
    when the person acted (the service window, WIN-1), ``now`` if not given.
    """
    if isinstance(command, CardRegistrationRequested):
        return decide_registration(world, command, book, now, acted_at=acted_at)
    if isinstance(command, RegistrationConfirmed):
        return _decide_confirmation(world, command, book, now, acted_at)
    if isinstance(command, ContactChangeRequested):
        return decide_change(world, command, book, now, acted_at=acted_at)
    if isinstance(command, CardRenewalRequested):
        return decide_renewal(world, command, book, now, acted_at=acted_at)
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
                               acted_at=acted_at, confirmed=True)


def decide_propagation(world: World, pending: PendingPropagation,
                       now: datetime) -> tuple[tuple[Payload, ...], str]:
    """What one propagation does at its target: the events, or none and why (REG-9).

    Checked again at the target when it runs, because the night may have changed
    things: the qualification may have lapsed, the card expired or been registered.
    """
    sched = pending.scheduled
    src, target = sched.source, sched.target_entity
    here = {"procuring_entity": target, "propagated_from": src.procuring_entity}
    q = world.qualification(target, src.domain, src.user_id)
    if q is None:
        return (), "not qualified at the target"
    if isinstance(src, CardRegistered):
        card = world.cards.get(src.card.key)
        if now > src.card.not_after:
            return (), "card expired"
        if card is not None and (card.user_id != src.user_id or card.revoked_anywhere()):
            return (), "card no longer usable"
        if card is not None and card.active_at(target, src.domain):
            return (), "already registered at the target"
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
    renewed: CardRenewed = src.model_copy(update=here)
    revoked = CardRevoked(
        procuring_entity=target, network=src.network, domain=src.domain, user_id=src.user_id,
        propagated_from=src.procuring_entity, card=src.old_card,
        reason=RevocationReason.RENEWED, replaced_by=src.new_card.ref)
    return (renewed, revoked), ""


def run_pending(world: World, pending: PendingPropagation,
                now: datetime) -> tuple[PendingPropagation, tuple[Payload, ...]]:
    """Apply one pending propagation to ``world``: its new state and the events."""
    events, note = decide_propagation(world, pending, now)
    for event in events:
        apply(world, event, now)
    status = PropagationStatus.DONE if events else PropagationStatus.SKIPPED
    updated = dataclasses.replace(pending, status=status, note=note)
    world.propagations[pending.scheduled.propagation_id] = updated
    return updated, events


def apply_decision(world: World, decision: Decision, now: datetime) -> list[Payload]:
    """Evolve ``world`` by a decision; every event to publish, in order.

    Propagations the person chose to apply at once (REG-9, CHG-3, RNW-8) are applied
    here too, in the same step as the command, not left to the nightly batch.
    """
    events = list(decision.events)
    for event in decision.events:
        apply(world, event, now)
    for event in decision.events:
        if isinstance(event, PropagationScheduled) and event.immediate:
            _, done = run_pending(world, world.propagations[event.propagation_id], now)
            events.extend(done)
    return events
