"""The review links' audit joins the hash-chained audit trail: every row of
``con_review_audit`` is appended to ``hub_audit`` (oldest first, after the rows already
there), then the old table is dropped. Each moved row keeps who (the address given, or
``anonymous``), when, the action (``review.<action>``), the case (target) and its entity,
the client address, and in its detail the HTTP status, the link's id and the refusal;
its outcome follows the status (2xx ok, 403 denied, 404/410/422 refused).

The rows are chained as pipelines/audit.py chains them (the same content hash, written
out here so that this revision keeps meaning what it meant when it was written), under
PostgreSQL's append lock. Downgrade recreates ``con_review_audit`` empty: the moved rows
stay in the trail, since deleting them would break its chain.

Revision ID: 0016_review_audit_trail
Revises: 0015_audit_trail
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016_review_audit_trail"
down_revision = "0015_audit_trail"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
_REFUSED = {403: "denied", 404: "refused", 410: "refused", 422: "refused"}
_Ts = sa.DateTime(timezone=True)

_old = sa.table("con_review_audit", sa.column("id", sa.Integer), sa.column("at", _Ts),
                sa.column("action", sa.String), sa.column("status", sa.Integer),
                sa.column("client", sa.String), sa.column("case_id", sa.String),
                sa.column("link_id", sa.String), sa.column("actor", sa.String),
                sa.column("detail", sa.String))
_case = sa.table("con_case", sa.column("case_id", sa.String),
                 sa.column("procuring_entity", sa.String))
_trail = sa.table("hub_audit", sa.column("at", _Ts), *(sa.column(c) for c in (
    "id", "actor", "actor_kind", "role", "entity", "action", "target", "client",
    "outcome", "detail", "prev_hash", "hash")))


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _digest(row: dict[str, Any]) -> str:
    """pipelines/audit.py's content hash of a row, including its id and predecessor."""
    content = [row["id"], _utc(row["at"]).isoformat(timespec="microseconds"), row["actor"],
               row["actor_kind"], row["role"], row["entity"], row["action"], row["target"],
               row["client"], row["outcome"], row["detail"], row["prev_hash"]]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(sa.text("select pg_advisory_xact_lock(7420018001)"))
    old = conn.execute(
        sa.select(_old, _case.c.procuring_entity)
        .select_from(_old.outerjoin(_case, _case.c.case_id == _old.c.case_id))
        .order_by(_old.c.id)).mappings().all()
    tail = conn.execute(sa.text("select id, hash from hub_audit order by id desc limit 1")
                        ).first()
    last_id, prev = (int(tail[0]), str(tail[1])) if tail is not None else (0, GENESIS)
    if not postgres:  # AUTOINCREMENT: never below an id once used (a deleted row's)
        used = conn.execute(sa.text(
            "select seq from sqlite_sequence where name = 'hub_audit'")).scalar()
        last_id = max(last_id, int(used or 0))
    for r in old:
        if postgres:
            row_id = int(conn.execute(sa.text(
                "select nextval(pg_get_serial_sequence('hub_audit', 'id'))")).scalar_one())
        else:
            row_id = last_id + 1
        last_id = row_id
        status = int(r["status"])
        row = {"id": row_id, "at": _utc(r["at"]), "actor": (r["actor"] or "anonymous")[:320],
               "actor_kind": "contractor", "role": "", "entity": r["procuring_entity"] or "",
               "action": f"review.{r['action']}", "target": r["case_id"] or "-",
               "client": r["client"] or "?",
               "outcome": "ok" if status < 400 else _REFUSED.get(status, "failed"),
               "detail": json.dumps({"status": status, "link_id": r["link_id"],
                                     "detail": r["detail"]}, ensure_ascii=False),
               "prev_hash": prev}
        row["hash"] = prev = _digest(row)
        conn.execute(sa.insert(_trail).values(**row))
    op.drop_table("con_review_audit")


def downgrade() -> None:
    op.create_table(
        "con_review_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _Ts, nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(100), nullable=True, index=True),
        sa.Column("link_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(254), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
    )
