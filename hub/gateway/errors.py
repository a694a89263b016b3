"""How the gateway refuses: an HTTP status and rule violations (rule ID, Japanese and
English text, next step), never a stack trace, never a secret.

:class:`GatewayRefusalError` is an ``HTTPException``, so FastAPI answers it as
``{"detail": {"violations": [...]}}`` without any handler to register.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException

from schemas.rejection import RuleViolation

__all__ = ["GatewayRefusalError", "refusal"]


class GatewayRefusalError(HTTPException):
    """A request the gateway will not serve, with the rules that say why."""

    def __init__(self, status: int, violations: Sequence[RuleViolation]) -> None:
        super().__init__(
            status_code=status,
            detail={"violations": [v.model_dump() for v in violations]},
            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
        )
        self.violations = tuple(violations)

    def __str__(self) -> str:
        return "; ".join(f"{v.rule_id}: {v.message_en}" for v in self.violations)


def refusal(status: int, rule_id: str, message: tuple[str, str],
            next_step: tuple[str, str]) -> GatewayRefusalError:
    """One violation: ``message`` and ``next_step`` are (Japanese, English)."""
    return GatewayRefusalError(status, [RuleViolation(
        rule_id=rule_id, message_ja=message[0], message_en=message[1],
        next_step_ja=next_step[0], next_step_en=next_step[1],
    )])
