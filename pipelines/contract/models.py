"""The contract process's tables (SQLModel; created by migration 0005_contract,
``cloudsign_document_id`` added by 0008_cloudsign_document).

- ``con_case``: one row per case (案件): the full :class:`~.state.CaseState` as JSON and
  beside it the columns the archive searches and lists (CON-6, CON-7: date, amount,
  counterparty, status, agreed n/m, last update), the live review link (CON-3) and the
  CloudSign document of the current send (CloudSign's webhook finds the case by it).
- ``con_document``: contract PDFs by SHA-256 (content-addressed, never changed): the
  prepared set, the contractor-signed and the concluded, signed PDF that both parties
  keep (電子帳簿保存法, CON-7).
- ``con_review_link`` (migration 0010): review links by the SHA-256 of their token (the
  token is never stored), with the link's one-time code as an HMAC (CON-3, :mod:`.links`).
Every view of and action through a review link is in the hash-chained audit trail
(``hub_audit``, pipelines/audit.py); migration 0016 moved the former ``con_review_audit``
rows there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["TRIGRAM_INDEX", "CaseRow", "DocumentRow", "ReviewLinkRow"]

Ts = sa.DateTime(timezone=True)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else ...,
                 sa_column=sa.Column(Ts, nullable=nullable, index=index))


TRIGRAM_INDEX = "ix_con_case_contractor_key_trgm"


class CaseRow(SQLModel, table=True):
    """One contract case and where it stands.

    Indexes for the staff's list (migration 0022): one entity's cases newest first, and
    the next page after a case (keyset); one entity's cases by status; on PostgreSQL a
    trigram index (``pg_trgm``) on the 商号 key, which a substring search can use (a
    plain one elsewhere).
    """

    __tablename__ = "con_case"
    __table_args__ = (
        sa.Index("ix_con_case_entity_updated", "procuring_entity", "updated_at", "case_id"),
        sa.Index("ix_con_case_entity_status", "procuring_entity", "status"),
        sa.Index(TRIGRAM_INDEX, "contractor_key", postgresql_using="gin",
                 postgresql_ops={"contractor_key": "gin_trgm_ops"}),
    )

    case_id: str = Field(primary_key=True, max_length=100)
    procuring_entity: str = Field(max_length=64)
    route: str = Field(max_length=16)
    status: str = Field(max_length=32, index=True)
    subject: str = Field(max_length=200)
    amount_yen: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, index=True))
    contractor_user_id: str = Field(max_length=20)
    contractor_name: str = Field(max_length=200, index=True)
    contractor_key: str = Field(default="", max_length=200,
                                description="trade_name_key(contractor_name): CON-7 search.")
    city_name: str = Field(max_length=100)
    agreed: int = 0
    parties: int = 2
    opened_at: datetime = _ts()
    updated_at: datetime = _ts(index=True)
    concluded_at: datetime | None = _ts(nullable=True, index=True)
    signing_job_id: str | None = Field(default=None, max_length=64, index=True)
    review_link_id: str | None = Field(default=None, max_length=36, index=True)
    cloudsign_request_id: str | None = Field(default=None, max_length=36, index=True)
    cloudsign_document_id: str | None = Field(default=None, max_length=64, index=True)
    document_sha256: str | None = Field(default=None, max_length=64)
    state: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))


class DocumentRow(SQLModel, table=True):
    """A contract PDF, content-addressed."""

    __tablename__ = "con_document"

    sha256: str = Field(primary_key=True, max_length=64)
    filename: str = Field(max_length=255)
    size_bytes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    content: bytes = Field(sa_type=sa.LargeBinary, repr=False)
    created_at: datetime = _ts()


class ReviewLinkRow(SQLModel, table=True):
    """One review link (CON-3), current or not, until purged after its expiry."""

    __tablename__ = "con_review_link"

    token_sha256: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(max_length=100, index=True)
    link_id: str = Field(max_length=36, index=True)
    number: int
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)
    spent_at: datetime | None = _ts(nullable=True)
    code_sha256: str | None = Field(default=None, max_length=64)
    code_for: str | None = Field(default=None, max_length=254)
    code_expires_at: datetime | None = _ts(nullable=True)
    code_attempts: int = 0
    codes_sent: int = 0


# The trigram index's operator class is the extension's (a trusted extension: the
# database's owner may create it): tables made from the models, not the migrations, get it
# too.
sa.event.listen(CaseRow.__table__, "before_create",  # type: ignore[attr-defined]
                sa.DDL("create extension if not exists pg_trgm")  # type: ignore[no-untyped-call]
                .execute_if(dialect="postgresql"))
