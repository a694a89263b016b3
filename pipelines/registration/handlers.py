"""Kafka handlers of the registration pipeline: load state, decide, write, emit.

Each handler is ``handle_x(ctx, envelope) -> None`` (pipelines/ports.py). It reads the
state the command needs from the batch's :class:`~.batch.Batch` (loaded for the whole
batch by :meth:`RegistrationHandlers.prepare`, the consumer's ``prepare`` hook; a batch
of one when a caller has no such hook), asks the pure rules, applies the events to the batch's World
(written back in bulk when the batch ends), and emits the events on
``proc.registration.events`` and the notice mails on ``proc.mail.requests`` (REG-10,
CHG-4, RNW-9, NTF-1). A command that breaks a rule gives a RegistrationRejected event
and changes nothing else; the service window (WIN-1) is judged at the time the person
acted (the envelope's occurred-at), the rest at processing time (``ctx.now``).

The handlers are built for one policy book, :class:`RegistrationHandlers` (``book``): the
hub's composition root (hub/bootstrap.py) loads the book from its settings and subscribes
``RegistrationHandlers(book).handlers`` (command type → handler) to the topics
``proc.registration.commands`` and ``proc.qualification.updates``, with its ``prepare``
on the ConsumerSpec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from pipelines.ports import Handler, HandlerContext, PermanentFailure
from pipelines.registration.batch import Batch, prepare_batch
from pipelines.registration.policy import PolicyBook, default_policy_book
from pipelines.registration.rules import apply_decision, decide
from pipelines.registration.store import upsert_qualification
from schemas.envelope import Envelope
from schemas.mail import MailRequested
from schemas.qualification import QualificationUpdated
from schemas.registration import (
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    HeldRegistrationRejected,
    PropagationScheduled,
    RegistrationConfirmed,
)
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["MESSAGE_TYPES", "RegistrationHandlers"]


def _entity_of(event: Payload, default: str) -> str:
    entity = getattr(event, "procuring_entity", None)
    if isinstance(event, PropagationScheduled):
        entity = event.target_entity
    return entity if isinstance(entity, str) else default


def _batch(ctx: HandlerContext) -> Batch | None:
    prepared = getattr(ctx, "prepared", None)
    return prepared if isinstance(prepared, Batch) else None


def _expect(envelope: Envelope[Any], kind: type[Payload]) -> None:
    if not isinstance(envelope.payload, kind):
        raise PermanentFailure(
            f"{envelope.type} reached the {kind.__name__} handler; check the subscription")


@dataclass(frozen=True)
class RegistrationHandlers:
    """The pipeline's handlers and batch hook, deciding with one policy ``book`` (the
    packaged default unless the hub's settings name another)."""

    book: PolicyBook = field(default_factory=default_policy_book)

    @property
    def handlers(self) -> dict[type[Payload], Handler]:
        """Every message type of the pipeline and its handler (commands and qualification
        updates)."""
        return {
            CardRegistrationRequested: self.handle_card_registration,
            RegistrationConfirmed: self.handle_registration_confirmed,
            HeldRegistrationRejected: self.handle_held_registration_rejected,
            ContactChangeRequested: self.handle_contact_change,
            CardRenewalRequested: self.handle_card_renewal,
            QualificationUpdated: self.handle_qualification_updated,
        }

    def prepare(self, session: Session, envelopes: Sequence[Envelope[Any]]) -> Batch:
        """The consumer's per-batch hook (``ConsumerSpec.prepare``): the batch's state at once."""
        return prepare_batch(self.book, session, envelopes)

    def _handle_command(self, ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        book = self.book
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

    def handle_card_registration(self, ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        """利用者登録 (REG-1 … REG-11)."""
        _expect(envelope, CardRegistrationRequested)
        self._handle_command(ctx, envelope)

    def handle_registration_confirmed(self, ctx: HandlerContext,
                                      envelope: Envelope[Any]) -> None:
        """The explicit confirmation of a held registration (REG-11)."""
        _expect(envelope, RegistrationConfirmed)
        self._handle_command(ctx, envelope)

    def handle_held_registration_rejected(self, ctx: HandlerContext,
                                          envelope: Envelope[Any]) -> None:
        """The city's staff rejects a held registration (REG-11)."""
        _expect(envelope, HeldRegistrationRejected)
        self._handle_command(ctx, envelope)

    def handle_contact_change(self, ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        """利用者変更 (CHG-1 … CHG-4)."""
        _expect(envelope, ContactChangeRequested)
        self._handle_command(ctx, envelope)

    def handle_card_renewal(self, ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        """ICカード更新 (RNW-1 … RNW-9)."""
        _expect(envelope, CardRenewalRequested)
        self._handle_command(ctx, envelope)

    @staticmethod
    def handle_qualification_updated(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        """資格審査情報 rows added or replaced (REG-3); password verifiers are kept."""
        _expect(envelope, QualificationUpdated)
        update: QualificationUpdated = envelope.payload
        for row in update.rows:
            upsert_qualification(ctx.session, update.procuring_entity, update.domain, row,
                                 ctx.now)
        if (batch := _batch(ctx)) is not None:
            batch.updated_qualifications(update)


MESSAGE_TYPES: tuple[type[Payload], ...] = (
    CardRegistrationRequested, RegistrationConfirmed, HeldRegistrationRejected,
    ContactChangeRequested,
    CardRenewalRequested, QualificationUpdated,
)
"""The message types the pipeline handles (commands and qualification updates)."""
