"""Cross-entity propagation (REG-9, CHG-3, RNW-8): the nightly batch, and "at once".

A registration, change or renewal at one entity schedules one pending item per other
entity of the network (``reg_pending_propagation``). :func:`propagate` applies the due
items, each in its own transaction with its own state (pending → done | skipped), so
a crash loses nothing and a second run does nothing twice. An item whose target is
inside an announced maintenance window (WIN-2) is held: due again at the window's end.
Items the person chose to apply at once are applied by the handler in the command's
own transaction (:func:`run_pending`); the batch picks up any left.

``hub propagate`` and the schedule in ``hub run`` call :func:`propagate`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from pipelines.registration.models import PendingPropagationRow
from pipelines.registration.policy import PolicyBook, WindowStop, default_policy_book
from pipelines.registration.rules import run_pending
from pipelines.registration.store import load_world, save_world, utc
from pipelines.registration.world import PendingPropagation, PropagationStatus
from schemas.registration import (
    CardRegistered,
    CardRenewed,
    ContactChanged,
    PropagationScheduled,
)
from schemas.registry import Payload

__all__ = ["PropagationReport", "propagate"]

log = logging.getLogger(__name__)

Emit = Callable[[Session, Payload, PendingPropagation], None]
"""Publishes one event (through the outbox, in the session's transaction)."""


@dataclass
class PropagationReport:
    """What one :func:`propagate` run did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    held: int = 0
    """Items whose target is inside an announced maintenance window (WIN-2): still
    pending, due again at the window's end; not counted as attempts."""
    events: list[Payload] = field(default_factory=list)
    skipped_notes: list[str] = field(default_factory=list)


def _card_keys(source: CardRegistered | ContactChanged | CardRenewed) -> list[tuple[str, str]]:
    if isinstance(source, CardRenewed):
        return [source.old_card.key, source.new_card.key]
    return [source.card.key]


def _one(session: Session, row: PendingPropagationRow, now: datetime, emit: Emit | None,
         book: PolicyBook) -> tuple[PendingPropagation, tuple[Payload, ...]]:
    scheduled = PropagationScheduled.model_validate_json(json.dumps(row.scheduled))
    world = load_world(session, network=row.network, entities=[row.target_entity],
                       user_ids=[row.user_id], propagation_ids=[row.propagation_id],
                       card_keys=_card_keys(scheduled.source))
    before = world.copy()
    updated, events = run_pending(world, world.propagations[scheduled.propagation_id], now,
                                  book)
    save_world(session, before, world, now)
    if emit is not None:
        for event in events:
            emit(session, event, updated)
    return updated, events


def propagate(session: Session, now: datetime, *, emit: Emit | None = None,
              limit: int = 1000, book: PolicyBook | None = None) -> PropagationReport:
    """Apply the propagations due at ``now`` (at most ``limit``), committing each one.

    Each target's own policy (``book``, the packaged default if not given) is asked again
    (REG-5, REG-6, RNW-3, RNW-4): a refusal emits the target's ``RegistrationRejected``
    and a ``MailRequested`` (route it to the mail topic) and marks the item skipped.

    ``session`` must not be inside a transaction the caller still needs: every item is
    committed on its own (resumable after a crash), and a failing item is rolled back,
    counted and retried on the next run, without stopping the others.
    """
    book = book or default_policy_book()
    report = PropagationReport()
    due = list(session.exec(
        select(PendingPropagationRow.propagation_id)
        .where(PendingPropagationRow.status == PropagationStatus.PENDING.value,
               col(PendingPropagationRow.due_at) <= utc(now))
        .order_by(col(PendingPropagationRow.due_at), col(PendingPropagationRow.propagation_id))
        .limit(limit)))
    session.commit()
    for propagation_id in due:
        try:
            row = session.get(PendingPropagationRow, propagation_id)
            if row is None or row.status != PropagationStatus.PENDING.value:
                session.commit()
                continue
            target = book.member(row.target_entity, row.network)
            window = target.maintenance_at(now, WindowStop.REGISTRATION) if target else None
            if window is not None:  # WIN-2: held until the window ends, as connectors do
                row.due_at = utc(window.end)
                session.add(row)
                session.commit()
                report.held += 1
                continue
            updated, events = _one(session, row, now, emit, book)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("propagation %s failed; it stays pending", propagation_id)
            _count_attempt(session, propagation_id)
            report.failed += 1
            continue
        if updated.status is PropagationStatus.DONE:
            report.done += 1
            report.events.extend(events)
        else:
            report.skipped += 1
            report.skipped_notes.append(f"{propagation_id}: {updated.note}")
    return report


def _count_attempt(session: Session, propagation_id: str) -> None:
    row = session.get(PendingPropagationRow, propagation_id)
    if row is not None:
        row.attempts += 1
        session.add(row)
    session.commit()
