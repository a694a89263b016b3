"""Kafka handlers of the registration pipeline: load state, decide, write, emit.

Each handler is ``def handle_x(ctx, envelope) -> None`` (pipelines/ports.py). It reads
the state the command needs from the batch's :class:`~.batch.Batch` (loaded for the
whole batch by :func:`prepare`, the consumer's ``prepare`` hook; a batch of one when a
caller has no such hook), asks the pure rules, applies the events to the batch's World
(written back in bulk when the batch ends), and emits the events on
``proc.registration.events`` and the notice mails on ``proc.mail.requests`` (REG-10,
CHG-4, RNW-9, NTF-1). A command that breaks a rule gives a RegistrationRejected event
and changes nothing else; the service window (WIN-1) is judged at the time the person
acted (the envelope's occurred-at), the rest at processing time (``ctx.now``).

The lead subscribes :data:`HANDLERS` (command type → handler) to the topics
``proc.registration.commands`` and ``proc.qualification.updates``, with
``prepare=handlers.prepare`` on the ConsumerSpec.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from pipelines.ports import Handler, HandlerContext, PermanentFailure
from pipelines.registration.batch import Batch, prepare_batch
from pipelines.registration.policy import PolicyBook, default_policy_book, load_policy_book
from pipelines.registration.rules import apply_decision, decide
from pipelines.registration.store import upsert_qualification
from schemas.envelope import Envelope
from schemas.mail import MailRequested
from schemas.qualification import QualificationUpdated
from schemas.registration import (
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    PropagationScheduled,
    RegistrationConfirmed,
)
from schemas.registry import Payload
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
    "prepare",
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


def _entity_of(event: Payload, default: str) -> str:
    entity = getattr(event, "procuring_entity", None)
    if isinstance(event, PropagationScheduled):
        entity = event.target_entity
    return entity if isinstance(entity, str) else default


def prepare(session: Session, envelopes: Sequence[Envelope[Any]]) -> Batch:
    """The consumer's per-batch hook (``ConsumerSpec.prepare``): the batch's state at once."""
    return prepare_batch(current_policy_book(), session, envelopes)


def _batch(ctx: HandlerContext) -> Batch | None:
    prepared = getattr(ctx, "prepared", None)
    return prepared if isinstance(prepared, Batch) else None


def _handle_command(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    book = current_policy_book()
    cmd = envelope.payload
    batch = _batch(ctx)
    own = batch is None
    if batch is None:  # called without the hub's prepare hook: a batch of one
        batch = Batch(book)
    batch.load(ctx.session, (cmd,))  # nothing to read when prepare loaded the batch
    batch.now = ctx.now
    decision = decide(batch.world, cmd, book, ctx.now, acted_at=envelope.occurred_at)
    events = apply_decision(batch.world, decision, ctx.now, book)
    if own:
        batch.finish(ctx.session)
    for event in events:
        if isinstance(event, MailRequested):  # a target refused an at-once propagation
            ctx.emit(Topics.MAIL_REQUESTS, event, cause=envelope)
            continue
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
    if (batch := _batch(ctx)) is not None:
        batch.updated_qualifications(update)


HANDLERS: dict[type[Payload], Handler] = {
    CardRegistrationRequested: handle_card_registration,
    RegistrationConfirmed: handle_registration_confirmed,
    ContactChangeRequested: handle_contact_change,
    CardRenewalRequested: handle_card_renewal,
    QualificationUpdated: handle_qualification_updated,
}
"""Every message type of the pipeline and its handler (commands and qualification updates)."""
