"""資格審査情報: the entity's registry of qualified companies (REG-3, REG-5, RNW-2).

Company data (企業情報) comes from here and is never typed by the person (REG-3).
The registry is fed by the qualification application system as
:class:`QualificationUpdated` messages, or imported from CSV. Passwords are not part
of any message: a row says only when the password was last changed (REG-4).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from stdnum.jp import cn

from schemas.envelope import EntityCode
from schemas.registration import Domain
from schemas.registry import Payload, message

__all__ = ["QualificationRecord", "QualificationUpdated", "valid_corporate_number"]

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_CONTROL)]


def valid_corporate_number(number: str) -> bool:
    """法人番号: 13 digits with its check digit (python-stdnum's ``stdnum.jp.cn``)."""
    return len(number) == 13 and number.isdigit() and bool(cn.is_valid(number))


class QualificationRecord(BaseModel):
    """One qualified company at one entity and domain (one row of 資格審査情報)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    user_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,20}$")]
    trade_name: Text = Field(description="商号又は名称 as registered (full-width).")
    postal_code: Annotated[str, Field(pattern=r"^[0-9]{3}-[0-9]{4}$")] | None = None
    head_office_address: Text
    representative_name: Text = Field(description="代表者氏名.")
    representative_title: Text | None = None
    contractor_name: Text = Field(description="契約者: whose name the IC card must bear (REG-5).")
    corporate_number: str | None = Field(default=None, description="法人番号 (13 digits).")
    invoice_number: str | None = Field(default=None, description="適格請求書発行事業者 T+13.")
    qualified_until: date | None = Field(default=None, description="End of the qualification.")
    password_changed_at: AwareDatetime | None = None

    @field_validator("corporate_number")
    @classmethod
    def _corporate_number(cls, value: str | None) -> str | None:
        if value is not None and not valid_corporate_number(value):
            raise ValueError("法人番号 must be 13 digits with a valid check digit")
        return value

    @field_validator("invoice_number")
    @classmethod
    def _invoice_number(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("T") and valid_corporate_number(value[1:])):
            raise ValueError("the invoice issuer number is T + a valid 13-digit 法人番号 (INV-1)")
        return value


@message("qualification.updated", 1)
class QualificationUpdated(Payload):
    """Rows of 資格審査情報 for one entity and domain, added or replaced by user ID."""

    procuring_entity: EntityCode
    domain: Domain
    rows: tuple[QualificationRecord, ...] = Field(min_length=1, max_length=5000)

    @model_validator(mode="after")
    def _unique_user_ids(self) -> Self:
        ids = [r.user_id for r in self.rows]
        if len(ids) != len(set(ids)):
            raise ValueError("a user ID appears twice in one update")
        return self
