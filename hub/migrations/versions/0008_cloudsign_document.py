"""The CloudSign document of a case's current send, as a searchable column.

CloudSign's webhook names only the document; the hub finds the case by the document id
it recorded from ContractSent (``con_case.cloudsign_document_id``), never by the
document's note, which people can edit in CloudSign's screens.

Revision ID: 0008_cloudsign_document
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_cloudsign_document"
down_revision = "0010_review_links"
branch_labels = None
depends_on = None


CASE = sa.table("con_case", sa.column("case_id", sa.String), sa.column("state", sa.JSON),
                sa.column("cloudsign_document_id", sa.String))


def upgrade() -> None:
    with op.batch_alter_table("con_case") as batch:
        batch.add_column(sa.Column("cloudsign_document_id", sa.String(64), nullable=True))
        batch.create_index("ix_con_case_cloudsign_document_id", ["cloudsign_document_id"])
    bind = op.get_bind()
    for case_id, state in bind.execute(sa.select(CASE.c.case_id, CASE.c.state)):
        document_id = (state or {}).get("cloudsign_document_id")
        if document_id:  # cases already sent keep being found by their document
            bind.execute(CASE.update().where(CASE.c.case_id == case_id)
                         .values(cloudsign_document_id=document_id))


def downgrade() -> None:
    with op.batch_alter_table("con_case") as batch:
        batch.drop_index("ix_con_case_cloudsign_document_id")
        batch.drop_column("cloudsign_document_id")
