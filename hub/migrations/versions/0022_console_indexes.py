"""Indexes for the staff console over a large store (docs/console.md, docs/performance.md):

- ``con_case``: one entity's cases newest first and the page after a given case
  (``procuring_entity, updated_at, case_id``: the list's order and its keyset), one
  entity's cases by status (the dashboard's counts), and on PostgreSQL a trigram index
  on ``contractor_key`` (extension ``pg_trgm``; a plain index on SQLite) which the
  counterparty search (a substring of the 商号 key) uses; the former plain index on
  ``contractor_key`` goes, as no search compares the key from its start;
- ``hub_audit``: a case's rows in order (``target, id``), which its timeline reads.

Revision ID: 0022_console_indexes
Revises: 0020_outcome_entity
"""

from __future__ import annotations

from alembic import op

revision = "0022_console_indexes"
down_revision = "0020_outcome_entity"
branch_labels = None
depends_on = None

_TRIGRAM = "ix_con_case_contractor_key_trgm"


def upgrade() -> None:
    op.create_index("ix_con_case_entity_updated", "con_case",
                    ["procuring_entity", "updated_at", "case_id"])
    op.create_index("ix_con_case_entity_status", "con_case", ["procuring_entity", "status"])
    op.drop_index("ix_con_case_contractor_key", table_name="con_case")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("create extension if not exists pg_trgm")
    # SQLite: a plain index of the same name (the models declare one index for both)
    op.create_index(_TRIGRAM, "con_case", ["contractor_key"], postgresql_using="gin",
                    postgresql_ops={"contractor_key": "gin_trgm_ops"})
    op.create_index("ix_hub_audit_target", "hub_audit", ["target", "id"])


def downgrade() -> None:
    op.drop_index("ix_hub_audit_target", table_name="hub_audit")
    op.drop_index(_TRIGRAM, table_name="con_case")
    op.create_index("ix_con_case_contractor_key", "con_case", ["contractor_key"])
    op.drop_index("ix_con_case_entity_status", table_name="con_case")
    op.drop_index("ix_con_case_entity_updated", table_name="con_case")
