"""Kafka handlers of the registration pipeline: load state, decide, write, emit.

Each handler is ``def handle_x(ctx, envelope) -> None`` (pipelines/ports.py). It loads
the slice of state the command needs through ``ctx.session``, asks the pure rules,
applies the events, writes what changed, and emits the events on
``proc.registration.events`` and the notice mails on ``proc.mail.requests`` (REG-10,
CHG-4, RNW-9, NTF-1). A command that breaks a rule gives a RegistrationRejected event
and changes nothing else; the service window (WIN-1) is judged at the time the person
acted (the envelope's occurred-at), the rest at processing time (``ctx.now``).

The lead subscribes :data:`HANDLERS` (command type → handler) to the topics
``proc.registration.commands`` and ``proc.qualification.updates``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sqlmodel import Session, select

from pipelines.ports import Handler, HandlerContext, PermanentFailure
from pipelines.registration.models import PendingConfirmationRow, QualificationRow
from pipelines.registration.policy import PolicyBook, default_policy_book, load_policy_book
from pipelines.registration.rules import apply_decision, decide
from pipelines.registration.store import load_world, save_world, upsert_qualification
from pipelines.registration.world import World
from schemas.envelope import Envelope
from schemas.qualification import QualificationUpdated
from schemas.registration import (
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    PropagationScheduled,
    RegistrationConfirmed,
)
from schemas.registry import Payload
from schemas.text import confusable_variants, trade_name_key
from schemas.topics import Topics

__all__ = [
    "HANDLERS",
    "POLICY_ENV",
    "current_policy_book",
    "handle_card_registration",
    "handle_card_renewal",
    "handle_contact_change",
    "handle_qualification_updated",
    "handle_registration_confirmed",
    "use_policy_book",
]

POLICY_ENV = "HUB_REGISTRATION_POLICY"
"""Environment variable naming the policy TOML file; the packaged default otherwise."""

_book: PolicyBook | None = None


def use_policy_book(book: PolicyBook | None) -> None:
    """Set the policy the handlers use (``None``: back to the environment or default)."""
    global _book  # noqa: PLW0603 -- one policy per process, set once at start-up
    _book = book


def current_policy_book() -> PolicyBook:
    global _book  # noqa: PLW0603
    if _book is None:
        path = os.environ.get(POLICY_ENV)
        _book = load_policy_book(path) if path else default_policy_book()
    return _book


def _held(session: Session, cmd: RegistrationConfirmed) -> CardRegistrationRequested | None:
    row = session.get(PendingConfirmationRow, str(cmd.confirmation_id))
    if row is None:
        return None
    return CardRegistrationRequested.model_validate_json(json.dumps(row.command))


def _slice(session: Session, book: PolicyBook, cmd: Payload) -> World:
    """Load everything the rules may look at for ``cmd`` (REG-3 hints, REG-11 look-alikes)."""
    assert isinstance(cmd, CardRegistrationRequested | RegistrationConfirmed
                      | ContactChangeRequested | CardRenewalRequested)
    network = book.network_of(cmd.procuring_entity) or cmd.procuring_entity
    entities = book.entities_in(network) or (cmd.procuring_entity,)
    users = {cmd.user_id}
    keys: list[tuple[str, str]] = []
    company_keys: list[str] = []
    corporate: list[str] = []
    confirmations: list[str] = []
    registration = cmd if isinstance(cmd, CardRegistrationRequested) else None
    if isinstance(cmd, RegistrationConfirmed):
        confirmations.append(str(cmd.confirmation_id))
        keys.append(cmd.card.key)
        registration = _held(session, cmd)
    if registration is not None:
        users.update(confusable_variants(registration.user_id))
        keys.append(registration.card.key)
        company_keys.append(trade_name_key(registration.trade_name))
        corporate += [n for n in session.exec(select(QualificationRow.corporate_number).where(
            QualificationRow.entity == registration.procuring_entity,
            QualificationRow.domain == registration.domain.value,
            QualificationRow.user_id == registration.user_id)) if n]
    if isinstance(cmd, ContactChangeRequested):
        keys.append(cmd.card.key)
    if isinstance(cmd, CardRenewalRequested):
        keys += [cmd.old_card.key, cmd.new_card.key]
    return load_world(session, network=network, entities=entities, user_ids=users,
                      card_keys=keys, company_keys=company_keys, corporate_numbers=corporate,
                      confirmation_ids=confirmations)


def _entity_of(event: Payload, default: str) -> str:
    entity = getattr(event, "procuring_entity", None)
    if isinstance(event, PropagationScheduled):
        entity = event.target_entity
    return entity if isinstance(entity, str) else default


def _handle_command(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    book = current_policy_book()
    cmd = envelope.payload
    world = _slice(ctx.session, book, cmd)
    before = world.copy()
    decision = decide(world, cmd, book, ctx.now, acted_at=envelope.occurred_at)
    events = apply_decision(world, decision, ctx.now)
    save_world(ctx.session, before, world, ctx.now)
    for event in events:
        ctx.emit(Topics.REGISTRATION_EVENTS, event, cause=envelope,
                 entity=_entity_of(event, envelope.procuring_entity))
    for mail in decision.mails:
        ctx.emit(Topics.MAIL_REQUESTS, mail, cause=envelope)


def _expect(envelope: Envelope[Any], kind: type[Payload]) -> None:
    if not isinstance(envelope.payload, kind):
        raise PermanentFailure(
            f"{envelope.type} reached the {kind.__name__} handler; check the subscription")


def handle_card_registration(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """利用者登録 (REG-1 … REG-11)."""
    _expect(envelope, CardRegistrationRequested)
    _handle_command(ctx, envelope)


def handle_registration_confirmed(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """The explicit confirmation of a held registration (REG-11)."""
    _expect(envelope, RegistrationConfirmed)
    _handle_command(ctx, envelope)


def handle_contact_change(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """利用者変更 (CHG-1 … CHG-4)."""
    _expect(envelope, ContactChangeRequested)
    _handle_command(ctx, envelope)


def handle_card_renewal(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """ICカード更新 (RNW-1 … RNW-9)."""
    _expect(envelope, CardRenewalRequested)
    _handle_command(ctx, envelope)


def handle_qualification_updated(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """資格審査情報 rows added or replaced (REG-3); password verifiers are kept."""
    _expect(envelope, QualificationUpdated)
    update: QualificationUpdated = envelope.payload
    for row in update.rows:
        upsert_qualification(ctx.session, update.procuring_entity, update.domain, row, ctx.now)


HANDLERS: dict[type[Payload], Handler] = {
    CardRegistrationRequested: handle_card_registration,
    RegistrationConfirmed: handle_registration_confirmed,
    ContactChangeRequested: handle_contact_change,
    CardRenewalRequested: handle_card_renewal,
    QualificationUpdated: handle_qualification_updated,
}
"""Every message type of the pipeline and its handler (commands and qualification updates)."""
