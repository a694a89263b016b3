"""What the agent and the hub say to each other, owned by the agent.

The hub's gateway (``hub/gateway/api.py``, pydantic, published in OpenAPI) is the
authority on request and response bodies; the agent sends and reads them as plain JSON.
What both sides must agree on byte for byte lives here, without dependencies, so the
agent's distribution needs neither pydantic nor anything of the hub: the card-proof
context, and the rule violation every refusal carries (same fields as the hub's
``schemas.rejection.RuleViolation``). A test compares the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["CARD_PROOF_CONTEXT", "RuleViolation"]

CARD_PROOF_CONTEXT = b"procurement-hub/gateway/card-proof/v1\n"
"""The card signs SHA-256(CARD_PROOF_CONTEXT + nonce) to answer a hub's challenge."""


@dataclass(frozen=True)
class RuleViolation:
    """One broken rule (rule ID such as PIN-1), in Japanese and English, with what to do."""

    rule_id: str
    message_ja: str
    message_en: str
    next_step_ja: str = ""
    next_step_en: str = ""
    field: str | None = None
    reference: str | None = None
    flag: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleViolation:
        """From the hub's JSON; fields the agent does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def model_dump(self) -> dict[str, Any]:
        return asdict(self)
