"""The audit trail: who did what to which entity's data, when, from where, with what outcome.

One append-only table, ``hub_audit``. A row is written in the same transaction as the
effect it records (a staff step's outbox record, a review-link step's command), so a
step that happened has its row and a row names a step that happened. Each row carries
the SHA-256 of its own content chained to the previous row's hash; :func:`verify` walks
the chain and names the first row whose content was edited or whose predecessor was
deleted. Writers take one lock for the append (PostgreSQL: a transaction-scoped
advisory lock; SQLite: the database's single write lock, taken by the insert), so the
chain never forks. Retention (:func:`prune`) removes old rows and records the hash it
cut at, so the chain still verifies from there (docs/identity.md).

It lives below the hub (``pipelines``) so that a pipeline's own step (a review link's
view or action) can write its row in its own transaction; :mod:`hub.audit` re-exports it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

__all__ = [
    "GENESIS",
    "AuditRecord",
    "ChainReport",
    "prune",
    "record",
    "record_alone",
    "rows",
    "verify",
]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UtcTimestamp = sa.DateTime(timezone=True)

GENESIS = "0" * 64
"""The previous hash of the first row ever written."""

_LOCK_AND_TAIL = (
    "select pg_advisory_xact_lock(7420018001); "
    "select nextval(pg_get_serial_sequence('hub_audit', 'id')), "
    "(select hash from hub_audit order by id desc limit 1)")
"""PostgreSQL: the advisory lock serialising appends (one chain), then the chain's tail."""
_RELAXED_LOCK_AND_TAIL = "set local synchronous_commit to off; " + _LOCK_AND_TAIL

PRUNED = "audit.pruned"


class AuditRecord(SQLModel, table=True):
    __tablename__ = "hub_audit"
    # Ids are never reused: a deleted row must leave a gap the chain shows. A case's rows
    # in order (its timeline) through their own index (migration 0022).
    __table_args__ = (sa.Index("ix_hub_audit_target", "target", "id"),
                      {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True,
                                                             autoincrement=True))
    at: datetime = Field(sa_type=UtcTimestamp, index=True)
    actor: str = Field(max_length=320, description="e-mail, subject or client id")
    actor_kind: str = Field(max_length=16, description="person | client | token | contractor")
    role: str = Field(max_length=64, description="the role the step needed, or ''")
    entity: str = Field(max_length=64, index=True, description="procuring entity, or ''")
    action: str = Field(max_length=64)
    target: str = Field(max_length=300)
    client: str = Field(max_length=64, description="the caller's network address")
    outcome: str = Field(max_length=16, description="ok | denied | refused | failed")
    detail: str = Field(default="", sa_type=sa.Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _digest(row: AuditRecord) -> str:
    content = [row.id, _utc(row.at).isoformat(timespec="microseconds"), row.actor,
               row.actor_kind, row.role, row.entity, row.action, row.target, row.client,
               row.outcome, row.detail, row.prev_hash]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(session: Session, *, actor: str, actor_kind: str, action: str, target: str,
           at: datetime, role: str = "", entity: str = "", client: str = "",
           outcome: str = "ok", detail: str = "", durable: bool = True) -> AuditRecord:
    """Append one row in ``session``'s transaction (the caller commits it with its effect).

    ``durable=False``: a row with no effect of its own (see :func:`record_alone`), whose
    commit need not wait for the disk."""
    row = AuditRecord(at=_utc(at), actor=actor[:320], actor_kind=actor_kind, role=role,
                      entity=entity, action=action, target=target[:300], client=client[:64],
                      outcome=outcome, detail=detail, prev_hash="", hash="")
    if session.get_bind().dialect.name == "postgresql":
        # The lock is held to commit: the next writer reads this row as its tail, and ids
        # follow the chain's order. The lock and the tail go in one message but as two
        # statements: in READ COMMITTED each statement takes its own snapshot, so the
        # tail is read after the lock is held and sees the previous holder's row.
        cursor = session.connection().connection.cursor()
        try:
            cursor.execute(_LOCK_AND_TAIL if durable else _RELAXED_LOCK_AND_TAIL)
            while cursor.nextset():
                pass
            tail = cursor.fetchone()
        finally:
            cursor.close()
        assert tail is not None
        row.id, row.prev_hash = int(tail[0]), tail[1] or GENESIS
        row.hash = _digest(row)
        session.add(row)
        session.flush()
        return row
    session.add(row)
    session.flush()  # the id, and SQLite's one write lock, before reading the tail
    previous = session.exec(select(AuditRecord.hash).where(col(AuditRecord.id) < row.id)
                            .order_by(col(AuditRecord.id).desc()).limit(1)).first()
    row.prev_hash = previous or GENESIS
    row.hash = _digest(row)
    session.add(row)
    session.flush()
    return row


def record_alone(engine: Engine, **fields: Any) -> AuditRecord:
    """A row with no effect of its own to share a transaction with (a read: a search, a
    download). On PostgreSQL its commit does not wait for the disk (``synchronous_commit
    off``): a crash may lose the last such rows, never a step's, and never breaks the
    chain (the log keeps commit order)."""
    with Session(engine, expire_on_commit=False) as tx, tx.begin():
        return record(tx, **fields, durable=False)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    last_hash: str = GENESIS


def verify(session: Session) -> ChainReport:
    """Walk the chain from the oldest row kept; name the first row that does not hold."""
    checked = 0
    expected: str | None = None  # the first kept row's predecessor: a prune marker names it
    anchor = session.exec(select(AuditRecord).where(AuditRecord.action == PRUNED)
                          .order_by(col(AuditRecord.id).desc()).limit(1)).first()
    last = GENESIS
    query = select(AuditRecord).order_by(col(AuditRecord.id))
    for row in session.exec(query.execution_options(yield_per=1000)):
        if expected is None:
            expected = _first_predecessor(anchor, row)
        if row.prev_hash != expected:
            return ChainReport(False, checked, row.id,
                               f"row {row.id}: its previous-row hash does not match the row "
                               "before it (a row before it was deleted or edited)", last)
        if _digest(row) != row.hash:
            return ChainReport(False, checked, row.id,
                               f"row {row.id}: its content does not match its hash "
                               "(the row was edited)", last)
        checked += 1
        expected = last = row.hash
    return ChainReport(True, checked, last_hash=last)


def _first_predecessor(anchor: AuditRecord | None, first: AuditRecord) -> str:
    if anchor is None:
        return GENESIS
    # A prune marker's detail holds the hash of the last row it removed; the first row
    # kept is the one right after it.
    cut = json.loads(anchor.detail or "{}")
    if cut.get("first_kept_id") == first.id:
        return str(cut.get("cut_hash", GENESIS))
    return GENESIS


def prune(session: Session, *, retention: timedelta, now: datetime, actor: str) -> int:
    """Delete rows older than ``retention``; a marker row records where the chain now starts."""
    cutoff = _utc(now) - retention
    old = session.exec(select(AuditRecord).where(col(AuditRecord.at) < cutoff)
                       .where(AuditRecord.action != PRUNED)
                       .order_by(col(AuditRecord.id).desc()).limit(1)).first()
    if old is None:
        return 0
    first_kept = session.exec(select(AuditRecord.id).where(col(AuditRecord.id) > old.id)
                              .order_by(col(AuditRecord.id)).limit(1)).first()
    result = session.execute(sa.delete(AuditRecord).where(col(AuditRecord.id) <= old.id))
    count = int(getattr(result, "rowcount", 0) or 0)
    record(session, actor=actor, actor_kind="token", action=PRUNED, target="hub_audit",
           at=now, outcome="ok", detail=json.dumps({
               "removed": count, "cut_hash": old.hash,
               "first_kept_id": first_kept, "retention_days": retention.days}))
    return count


def rows(session: Session, *, entities: Sequence[str] | None = None,
         since: datetime | None = None, limit: int = 100) -> list[AuditRecord]:
    """The newest rows first; ``entities`` limits them to rows naming one of them (a row's
    entity is one code, or the caller's codes joined by commas for a step on no case)."""
    query = select(AuditRecord)
    if entities is not None:
        column = col(AuditRecord.entity)
        query = query.where(sa.or_(sa.false(), *(
            sa.or_(column == e, column.startswith(e + ","), column.endswith("," + e),
                   column.contains("," + e + ","))
            for e in sorted(set(entities)))))
    if since is not None:
        query = query.where(col(AuditRecord.at) >= _utc(since))
    return list(session.exec(query.order_by(col(AuditRecord.id).desc()).limit(limit)))
