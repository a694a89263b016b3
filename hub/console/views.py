"""What the console's pages show, read from the store and the process (never written).

- :func:`registrations`: the answers to registration requests (``gw_outcome``) of today and
  this week (Asia/Tokyo), accepted, rejected by rule ID and held for confirmation, and
  the REG-11 queue (``reg_pending_confirmation``), for the caller's entities;
- :func:`cases_by_status`: ``con_case`` counted by status, for the caller's entities;
- :func:`dead_letters`: dead-lettered messages per consumer from the processing records
  (kept until retention), and per consumer and reason from this process's metrics;
- :func:`consumer_lag`: ``hub_consumer_lag`` of the partitions this process holds;
- :func:`connectors`: each connector's health, circuit and maintenance window;
- :func:`timeline`: a case's steps from its stored state and its rows of the audit trail
  (the staff's, and the review link's where the trail holds them), oldest first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hub import metrics
from hub.db import ProcessedMessage
from hub.gateway.models import OutcomeRow
from pipelines.audit import AuditRecord
from pipelines.contract.models import CaseRow
from pipelines.contract.state import CaseState
from pipelines.registration.models import PendingConfirmationRow
from schemas.envelope import JST
from schemas.registration import (
    CardRegistered,
    CardRenewed,
    ContactChanged,
    RegistrationNeedsConfirmation,
    RegistrationRejected,
)

__all__ = [
    "Decision",
    "Registrations",
    "TimelineEntry",
    "cases_by_status",
    "connectors",
    "consumer_lag",
    "dead_letters",
    "decisions",
    "held",
    "registrations",
    "replays",
    "timeline",
    "week_start",
]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def day_start(now: datetime) -> datetime:
    """Midnight in Asia/Tokyo of ``now``'s day."""
    local = now.astimezone(JST)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime) -> datetime:
    """Monday 00:00 in Asia/Tokyo of ``now``'s week."""
    today = day_start(now)
    return today - timedelta(days=today.weekday())


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    needs_confirmation: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)


@dataclass
class Registrations:
    today: Tally
    week: Tally
    queue: int


_KIND = {CardRegistered.message_type: "accepted", ContactChanged.message_type: "accepted",
         CardRenewed.message_type: "accepted", RegistrationRejected.message_type: "rejected",
         RegistrationNeedsConfirmation.message_type: "needs_confirmation"}
"""The answers the gateway keeps (hub/gateway/outcomes.py), by kind."""


def _kind(message_type: str) -> str | None:
    return _KIND.get(message_type)


def registrations(db: Session, entities: frozenset[str] | None, now: datetime) -> Registrations:
    """Counted by the database over the answers' entity and time (the index
    ``procuring_entity, received_at``); only the week's rejections are read whole, for
    their rule IDs."""
    today, week = Tally(), Tally()
    # bounds in UTC, as stored (SQLite compares the stored text)
    since_day, since_week = day_start(now).astimezone(UTC), week_start(now).astimezone(UTC)
    received = col(OutcomeRow.received_at)
    mine = [received >= since_week, col(OutcomeRow.message_type).in_(sorted(_KIND))]
    if entities is not None:
        mine.append(col(OutcomeRow.procuring_entity).in_(sorted(entities)))
    is_today = sa.case((received >= since_day, 1), else_=0)
    counted = (select(OutcomeRow.message_type, is_today, sa.func.count()).where(*mine)
               .group_by(OutcomeRow.message_type, is_today))
    for message_type, on_day, n in db.exec(counted):
        kind = _KIND[message_type]
        for tally in (week, today) if on_day else (week,):
            setattr(tally, kind, getattr(tally, kind) + int(n))
    rejected = select(OutcomeRow.received_at, OutcomeRow.payload).where(
        *mine, OutcomeRow.message_type == RegistrationRejected.message_type)
    for at, payload in db.exec(rejected):
        rules = [str(v.get("rule_id")) for v in payload.get("violations") or ()]
        for tally in (week, today) if _aware(at) >= since_day else (week,):
            tally.by_rule.update(rules)
    queue = 0
    for command in db.exec(select(PendingConfirmationRow.command)):
        if entities is None or command.get("procuring_entity") in entities:
            queue += 1
    return Registrations(today, week, queue)


def cases_by_status(db: Session, entities: frozenset[str] | None) -> dict[str, int]:
    query = select(CaseRow.status, sa.func.count()).group_by(CaseRow.status)
    if entities is not None:
        query = query.where(col(CaseRow.procuring_entity).in_(sorted(entities)))
    return {str(status): int(n) for status, n in db.exec(query)}


def dead_letters(db: Session) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    """(recorded dead letters per consumer, this process's per consumer and reason)."""
    query = (select(ProcessedMessage.consumer, sa.func.count())
             .where(ProcessedMessage.outcome == "dead").group_by(ProcessedMessage.consumer))
    stored = {str(c): int(n) for c, n in db.exec(query)}
    live = [(s.labels["consumer"], s.labels["reason"], int(s.value))
            for family in metrics.DEAD_LETTERED.collect() for s in family.samples
            if s.name.endswith("_total") and s.value]
    return stored, sorted(live)


def consumer_lag() -> list[tuple[str, str, int]]:
    """(consumer, topic, records behind) summed over the partitions this process holds."""
    lag: Counter[tuple[str, str]] = Counter()
    for family in metrics.CONSUMER_LAG.collect():
        for s in family.samples:
            lag[(s.labels["consumer"], s.labels["topic"])] += int(s.value)
    return sorted((c, t, n) for (c, t), n in lag.items())


async def connectors(watch: Any, now: datetime) -> list[dict[str, Any]]:
    """Each connector of the process's :class:`~hub.connector_watch.ConnectorWatch`."""
    if watch is None:
        return []
    health: dict[str, dict[str, Any]] = await watch.health()
    out = []
    for name in sorted(set(health) | set(watch.connectors)):
        found = dict(health.get(name) or {"ok": None, "state": "-", "detail": ""})
        guard = getattr(watch.connectors.get(name), "guard", None)
        found["name"] = name
        found["window_until"] = None
        if guard is not None:
            found.setdefault("circuit", str(guard.breaker.state))
            closed = guard.calendar.closed_until(now)
            found["window_until"] = closed[0] if closed is not None else None
        out.append(found)
    return out


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    who: str = ""
    detail: str = ""


def _state_steps(state: CaseState) -> Iterable[TimelineEntry]:
    yield TimelineEntry(state.opened_at, "econtract.opened (開札)", state.city_name)
    steps = (
        (state.contractor_agreed_at, "econtract.contractor-agreed (受注者の合意)",
         state.contractor_agreed_by),
        (state.contractor_signed_at, "econtract.contractor-signed (受注者の電子署名)",
         state.contractor_signer),
        (state.city_agreed_at, "econtract.city-agreed (発注者の合意)", None),
        (state.city_signed_at, "econtract.city-signed (発注者の電子署名)", state.city_signer),
        (state.concluded_at, "econtract.concluded (締結)", None),
    )
    for at, what, who in steps:
        if at is not None:
            yield TimelineEntry(at, what, who or "")


def timeline(db: Session, state: CaseState) -> list[TimelineEntry]:
    """The case's recorded steps and its rows of the audit trail: the staff's steps and
    reads, and the review link's views and actions (``actor_kind`` ``contractor``)."""
    entries = list(_state_steps(state))
    rows = db.exec(select(AuditRecord).where(AuditRecord.target == state.case_id)
                   .where(AuditRecord.entity == state.procuring_entity)
                   .order_by(col(AuditRecord.id)).limit(1000))
    entries += [TimelineEntry(_aware(r.at), ("review link: " if r.actor_kind == "contractor"
                                             else "staff: ") + r.action, r.actor,
                              f"{r.role} {r.outcome} {r.detail}".strip()) for r in rows]
    return sorted(entries, key=lambda e: _aware(e.at))


def replays(db: Session, refs: Iterable[str]) -> dict[str, tuple[datetime, str]]:
    """When and by whom each of ``refs`` was last replayed (the audit trail's
    ``dlq.replay`` rows: the console's and the command line's)."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    query = (select(AuditRecord).where(AuditRecord.action == "dlq.replay")
             .where(col(AuditRecord.target).in_(wanted)).order_by(col(AuditRecord.id)))
    return {r.target: (_aware(r.at), r.actor) for r in db.exec(query)}


@dataclass(frozen=True)
class Decision:
    """One answer to a registration request, as the 利用者登録 page lists it."""

    at: datetime
    kind: str
    entity: str
    user_id: str
    violations: tuple[dict[str, Any], ...]


def decisions(db: Session, entities: frozenset[str] | None, limit: int = 200,
              ) -> list[Decision]:
    """The newest answers to registration requests (``gw_outcome``) of ``entities``; a
    rejection with every violation's rule ID and texts, a held one with its reason."""
    query = select(OutcomeRow).order_by(col(OutcomeRow.received_at).desc()).limit(limit * 4)
    out = []
    for row in db.exec(query):
        payload, kind = row.payload, _kind(row.message_type)
        if kind is None or (entities is not None
                            and payload.get("procuring_entity") not in entities):
            continue
        found = list(payload.get("violations") or ())
        if isinstance(payload.get("reason"), dict):
            found.append(payload["reason"])
        out.append(Decision(_aware(row.received_at), kind,
                            str(payload.get("procuring_entity") or ""),
                            str(payload.get("user_id") or ""), tuple(found)))
        if len(out) >= limit:
            break
    return out


def held(db: Session, entities: frozenset[str] | None) -> list[dict[str, Any]]:
    """The REG-11 queue: registrations held until the person confirms them."""
    query = select(PendingConfirmationRow).order_by(col(PendingConfirmationRow.created_at))
    out = []
    for row in db.exec(query):
        command = row.command
        if entities is not None and command.get("procuring_entity") not in entities:
            continue
        out.append({"id": row.confirmation_id, "at": _aware(row.created_at),
                    "entity": command.get("procuring_entity", ""),
                    "user_id": command.get("user_id", ""),
                    "trade_name": command.get("trade_name", ""), "serial": row.serial})
    return out
