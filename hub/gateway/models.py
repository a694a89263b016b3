"""The gateway's tables (SQLModel; created by migration 0003_gateway).

- ``gw_challenge``: login challenges, single use and short-lived, so a replayed or
  stale answer is refused in every hub process alike.
- ``gw_session``: card sessions, by the SHA-256 of their bearer token (the token itself
  is never stored), bound to the card (issuer + serial) and its user ID (PIN-2), and to
  the procuring entity, system and domain they were opened for (REG-1, CHG-2).
- ``gw_outcome``: what the registration pipeline answered to a request submitted here
  (企業ID and summary, or the rejection with rule IDs), keyed by the request's id, with
  its procuring entity (the staff's registration list, hub/staff_queries.py).
- ``gw_signing_job``: documents a contractor has to sign at the edge, per user ID, and
  the signed PDF once the hub validated it (CON-2, CON-5).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["ChallengeRow", "OutcomeRow", "SessionRow", "SigningJobRow", "SigningJobStatus"]

Ts = sa.DateTime(timezone=True)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else ...,
                 sa_column=sa.Column(Ts, nullable=nullable, index=index))


class ChallengeRow(SQLModel, table=True):
    __tablename__ = "gw_challenge"

    id: str = Field(primary_key=True, max_length=64)
    nonce: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)
    used_at: datetime | None = _ts(nullable=True)


class SessionRow(SQLModel, table=True):
    __tablename__ = "gw_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    network: str = Field(max_length=64)
    user_id: str = Field(max_length=20, index=True)
    company_id: str = Field(max_length=16)
    issuer: str = Field(max_length=200)
    serial: str = Field(max_length=50)
    procuring_entity: str = Field(default="", max_length=64)
    system: str = Field(default="", max_length=16)
    domain: str = Field(default="", max_length=16)
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)


class OutcomeRow(SQLModel, table=True):
    __tablename__ = "gw_outcome"
    __table_args__ = (sa.Index("ix_gw_outcome_entity_received", "procuring_entity",
                               "received_at"),)

    request_id: str = Field(primary_key=True, max_length=64)
    message_type: str = Field(max_length=100)
    procuring_entity: str = Field(default="", max_length=64)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    received_at: datetime = _ts()


class SigningJobStatus(StrEnum):
    """Where a contractor's signing job stands (``gw_signing_job.status``)."""

    PENDING = "pending"
    """Waiting for the contractor's card signature."""
    SIGNED = "signed"
    """Its signed PDF validated and kept."""


class SigningJobRow(SQLModel, table=True):
    __tablename__ = "gw_signing_job"

    id: str = Field(primary_key=True, max_length=64)
    network: str = Field(max_length=64)
    user_id: str = Field(max_length=20, index=True)
    procuring_entity: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    parties: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    amount_yen: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    document: bytes = Field(sa_type=sa.LargeBinary)
    document_sha256: str = Field(max_length=64)
    status: str = Field(max_length=16, description="pending | signed")
    created_at: datetime = _ts()
    signed_document: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    signed_at: datetime | None = _ts(nullable=True)
    signer_issuer: str | None = Field(default=None, max_length=200)
    signer_serial: str | None = Field(default=None, max_length=50)
