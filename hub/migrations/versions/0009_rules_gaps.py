"""The contract archive's counterparty search key (CON-7); card sessions bound to the
entity, system and domain they were opened for (REG-1, CHG-2).

``con_case.contractor_key`` holds ``schemas.text.trade_name_key(contractor_name)``, written
once with the case and indexed: the search compares it with the key of what was typed,
so full-width, half-width, (株) and 株式会社 find the same company. Existing rows get
their key here.

``gw_session`` gets ``procuring_entity``, ``system`` and ``domain``; sessions opened
before have none and are refused on their next call (the agent logs in again).

Revision ID: 0009_rules_gaps
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from schemas.text import trade_name_key

revision = "0009_rules_gaps"
down_revision = "0008_cloudsign_document"
branch_labels = None
depends_on = None

_SESSION_COLUMNS = (("procuring_entity", 64), ("system", 16), ("domain", 16))


def upgrade() -> None:
    op.add_column("con_case", sa.Column("contractor_key", sa.String(200), nullable=False,
                                        server_default=""))
    cases = sa.table("con_case", sa.column("case_id", sa.String),
                     sa.column("contractor_name", sa.String),
                     sa.column("contractor_key", sa.String))
    conn = op.get_bind()
    for case_id, name in list(conn.execute(sa.select(cases.c.case_id,
                                                      cases.c.contractor_name))):
        conn.execute(cases.update().where(cases.c.case_id == case_id)
                     .values(contractor_key=trade_name_key(name)))
    op.create_index("ix_con_case_contractor_key", "con_case", ["contractor_key"])
    for name, size in _SESSION_COLUMNS:
        op.add_column("gw_session", sa.Column(name, sa.String(size), nullable=False,
                                              server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("gw_session") as batch:
        for name, _ in _SESSION_COLUMNS:
            batch.drop_column(name)
    op.drop_index("ix_con_case_contractor_key", table_name="con_case")
    with op.batch_alter_table("con_case") as batch:
        batch.drop_column("contractor_key")
