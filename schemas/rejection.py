"""Rule violations: how every rejection names its rule and tells people what to do.

A rejection is not an error of the hub: it is a business answer, published as an
event, that cites rule IDs (docs/rule-ids.md) (REG-1, RNW-5, SUR-3, ...) and says, in
Japanese and English, what is wrong and what the user can do next.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RuleId", "RuleViolation"]

RuleId = Annotated[str, Field(
    pattern=r"^(REG|CHG|RNW|PIN|WIN|SUR|CON|INV|NTF|EDGE|IAM|OPS|X-[A-Z][A-Z0-9]{1,19})-\d{1,2}$")]
"""A rule of docs/rule-ids.md; EDGE-1 … EDGE-3 are the HTTP edge's limits (docs/security.md),
IAM-1 … IAM-4 the staff's identity and each entity's own connectors (docs/identity.md),
OPS-n the control API's answers; ``X-<CONNECTOR>-n`` a rule an installed connector plugin
names for its own peer (docs/connectors.md)."""


class RuleViolation(BaseModel):
    """One broken rule, with text for people in both languages."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    rule_id: RuleId
    message_ja: str = Field(min_length=1)
    message_en: str = Field(min_length=1)
    next_step_ja: str = Field(default="", description="What the user can do next (Japanese).")
    next_step_en: str = Field(default="", description="What the user can do next (English).")
    field: str | None = Field(default=None, description="The input field concerned, if any.")
    reference: str | None = Field(
        default=None, max_length=60,
        description="The rule of a published specification this violation reports, e.g. "
                    "JP PINT's 'ibr-co-13' (INV-4).")
    flag: Literal["fatal", "warning", "information"] | None = Field(
        default=None, description="That rule's flag: fatal rejects, a warning is recorded.")
