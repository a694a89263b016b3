"""The contract archive's counterparty search key (CON-7).

``con_case.contractor_key`` holds ``schemas.text.trade_name_key(contractor_name)``, written
once with the case and indexed: the search compares it with the key of what was typed,
so full-width, half-width, (株) and 株式会社 find the same company. Existing rows get
their key here.

Revision ID: 0009_contract_counterparty_key
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from schemas.text import trade_name_key

revision = "0009_contract_counterparty_key"
down_revision = "0006_registration_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("con_case", sa.Column("contractor_key", sa.String(200), nullable=False,
                                        server_default=""))
    cases = sa.table("con_case", sa.column("case_id", sa.String),
                     sa.column("contractor_name", sa.String),
                     sa.column("contractor_key", sa.String))
    conn = op.get_bind()
    for case_id, name in conn.execute(sa.select(cases.c.case_id, cases.c.contractor_name)):
        conn.execute(cases.update().where(cases.c.case_id == case_id)
                     .values(contractor_key=trade_name_key(name)))
    op.create_index("ix_con_case_contractor_key", "con_case", ["contractor_key"])


def downgrade() -> None:
    op.drop_index("ix_con_case_contractor_key", table_name="con_case")
    with op.batch_alter_table("con_case") as batch:
        batch.drop_column("contractor_key")
