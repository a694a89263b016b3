"""The city signer's own table (SQLModel; created by migration 0014_leases_documents).

``con_city_signature``: one row per case and contractor-signed PDF the city's signer has
signed, naming the city-signed PDF (in the document store) and its signer. The signing
consumer writes it before it emits CitySignatureApplied, so a redelivered request (the
process died between the two) reuses that signature instead of signing and timestamping
the case a second time.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from hub.db import UtcTimestamp

__all__ = ["CitySignatureRow"]


class CitySignatureRow(SQLModel, table=True):
    __tablename__ = "con_city_signature"

    case_id: str = Field(primary_key=True, max_length=100)
    contractor_sha256: str = Field(primary_key=True, max_length=64)
    signed_sha256: str = Field(max_length=64)
    filename: str = Field(max_length=255)
    size_bytes: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    signer_subject: str = Field(max_length=300)
    signed_at: datetime = Field(sa_type=UtcTimestamp)
