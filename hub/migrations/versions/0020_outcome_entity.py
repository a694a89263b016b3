"""``gw_outcome`` gets ``procuring_entity``: the staff's registration list
(``GET /staff/registrations``, docs/identity.md) is limited to the caller's entities by an
indexed column, not by reading every outcome's payload. Existing rows take the entity
their payload names (every registration event carries one); the index serves "one
entity's outcomes, newest first".

Revision ID: 0020_outcome_entity
Revises: 0016_review_audit_trail
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0020_outcome_entity"
down_revision = "0016_review_audit_trail"
branch_labels = None
depends_on = None

_INDEX = "ix_gw_outcome_entity_received"
_outcomes = sa.table("gw_outcome", sa.column("request_id", sa.String),
                     sa.column("payload", sa.JSON), sa.column("procuring_entity", sa.String))


def _entity(payload: Any) -> str:
    if isinstance(payload, str):  # a driver that hands JSON back as text
        payload = json.loads(payload)
    return str((payload or {}).get("procuring_entity") or "")[:64]


def upgrade() -> None:
    op.add_column("gw_outcome", sa.Column("procuring_entity", sa.String(64), nullable=False,
                                          server_default=""))
    conn = op.get_bind()
    for request_id, payload in list(conn.execute(sa.select(_outcomes.c.request_id,
                                                           _outcomes.c.payload))):
        conn.execute(_outcomes.update().where(_outcomes.c.request_id == request_id)
                     .values(procuring_entity=_entity(payload)))
    op.create_index(_INDEX, "gw_outcome", ["procuring_entity", "received_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="gw_outcome")
    with op.batch_alter_table("gw_outcome") as batch:
        batch.drop_column("procuring_entity")
