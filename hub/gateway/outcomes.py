"""Registration outcomes for the agent (REG-10): what the pipeline answered to a request.

:func:`handle_registration_event` is a pipeline handler (pipelines/ports.py) for the
``proc.registration.events`` topic: it keeps the first answer to each request submitted
through the gateway, keyed by the request's message id (the events' causation id).
:func:`outcome` reads it back for ``GET /gateway/requests/{id}``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from hub.gateway.api import OutcomeOut
from hub.gateway.models import OutcomeRow
from pipelines.ports import HandlerContext
from schemas.envelope import Envelope
from schemas.registration import (
    CardRegistered,
    CardRenewed,
    ContactChanged,
    RegistrationNeedsConfirmation,
    RegistrationRejected,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation

__all__ = ["OUTCOME_TYPES", "STATUS_OF_TYPE", "handle_registration_event", "outcome"]

_STATUS: dict[type[Payload], str] = {
    CardRegistered: "done",
    ContactChanged: "done",
    CardRenewed: "done",
    RegistrationRejected: "rejected",
    RegistrationNeedsConfirmation: "needs-confirmation",
}
OUTCOME_TYPES: tuple[type[Payload], ...] = tuple(_STATUS)
"""The registration events that answer a request (what the consumer subscribes to)."""
STATUS_OF_TYPE: dict[str, str] = {cls.message_type: s for cls, s in _STATUS.items()}
"""A kept answer's status (``done``, ``rejected``, ``needs-confirmation``) by its type."""


def handle_registration_event(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    payload = envelope.payload
    if envelope.causation_id is None or type(payload) not in _STATUS:
        return
    if getattr(payload, "propagated_from", None):
        return  # applied elsewhere by the batch: not the answer to the person's request
    key = str(envelope.causation_id)
    if ctx.session.get(OutcomeRow, key) is None:
        ctx.session.add(OutcomeRow(request_id=key, message_type=envelope.type,
                                   procuring_entity=payload.procuring_entity,
                                   payload=payload.model_dump(mode="json"), received_at=ctx.now))


def outcome(session: Session, request_id: str) -> OutcomeOut:
    row = session.get(OutcomeRow, request_id)
    if row is None:
        return OutcomeOut(request_id=request_id, status="pending")
    status = next(s for cls, s in _STATUS.items() if cls.message_type == row.message_type)
    payload = row.payload
    violations = [RuleViolation.model_validate(v) for v in payload.get("violations", ())]
    if status == "needs-confirmation" and "reason" in payload:
        violations.append(RuleViolation.model_validate(payload["reason"]))
    return OutcomeOut(request_id=request_id, status=status,  # type: ignore[arg-type]
                      message_type=row.message_type, company_id=payload.get("company_id"),
                      summary=payload, violations=violations)
