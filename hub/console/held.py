"""The REG-11 queue's two staff steps in the console (管理者 only, docs/console.md):
confirm a held registration after checking with the company, or reject it.

Neither writes the registration's tables: each publishes the registration pipeline's own
command through the transactional outbox, in the same transaction as its audit row
(``registrations.confirm`` / ``registrations.reject``, naming the person), and the
pipeline decides as for any command. ``RegistrationConfirmed`` with ``confirmed_by``
runs the held request as the applicant asked it; ``HeldRegistrationRejected`` answers it
with a RegistrationRejected naming REG-11 and mails the applicant's ICカード利用部署
address. The command's message id is derived from the held request, so a second click
(of either step) is the same message and the pipeline handles it once; the console also
refuses a step on a request already decided (REG-11, ``no-confirmation``).
"""

from __future__ import annotations

import json
import uuid
from typing import Literal

from fastapi import HTTPException, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub.contract.archive_api import ArchiveService, scope_of
from hub.identity import Principal, Role, denied_entity, denied_role
from hub.outbox import enqueue
from pipelines.audit import AuditRecord
from pipelines.registration.models import PendingConfirmationRow
from pipelines.registration.texts import violation
from schemas.envelope import new_envelope
from schemas.registration import (
    CardRegistrationRequested,
    HeldRegistrationRejected,
    RegistrationConfirmed,
)
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["ACTIONS", "Step", "decide_held"]

Step = Literal["confirm", "reject"]
ACTIONS: dict[str, str] = {"confirm": "registrations.confirm", "reject": "registrations.reject"}
PRODUCER = "hub-console"
_IDS = uuid.UUID("6f1d3c1e-6b8e-4f57-9d0f-6c1b7d9e2a11")
"""The namespace of the staff steps' message ids (one per held request)."""


def _gone(confirmation_id: str) -> HTTPException:
    return HTTPException(409, detail={"violations": [
        violation("no-confirmation", field="confirmation_id").model_dump()]})


def decide_held(engine: Engine, archive: ArchiveService, who: Principal, request: Request,
                *, confirmation_id: str, step: Step) -> str:
    """Publish the staff's ``step`` on the held registration ``confirmation_id``; the
    command's message id (the request id its answer is kept under). 403 without the
    管理者 role (IAM-2) or for another entity's request (IAM-3), 409 (REG-11) for one not
    held any more or decided already; every refusal audited."""
    action = ACTIONS[step]
    refused: tuple[str, str, str, HTTPException] | None = None
    """(role, entity, detail, the answer): audited on its own, after the read."""
    with Session(engine) as db, db.begin():
        row = db.get(PendingConfirmationRow, confirmation_id[:36])
        # Strict commands are read from JSON, as the pipeline's store reads them.
        held = (CardRegistrationRequested.model_validate_json(json.dumps(row.command))
                if row is not None else None)
        if row is None or held is None:
            refused = ("", "", "not held", _gone(confirmation_id))
        elif Role.ADMIN not in who.roles:
            refused = ("", held.procuring_entity, "role", denied_role({Role.ADMIN}))
        elif not who.covers(held.procuring_entity):
            refused = (Role.ADMIN.value, held.procuring_entity, "entity",
                       denied_entity(held.procuring_entity, "registration"))
        elif db.exec(select(AuditRecord.id).where(
                col(AuditRecord.action).in_(tuple(ACTIONS.values())),
                AuditRecord.target == confirmation_id,
                AuditRecord.outcome == "ok")).first() is not None:
            refused = (Role.ADMIN.value, held.procuring_entity, "decided already",
                       _gone(confirmation_id))
        else:
            message_id = _publish(db, archive, who, request, row=row, held=held, step=step)
    if refused is not None:
        role, entity, detail, exc = refused
        archive.write(who, request, action, confirmation_id[:300], role=role,
                      entity=entity or scope_of(who),
                      outcome="refused" if exc.status_code == 409 else "denied", detail=detail)
        raise exc
    return message_id


def _publish(db: Session, archive: ArchiveService, who: Principal, request: Request, *,
             row: PendingConfirmationRow, held: CardRegistrationRequested, step: Step) -> str:
    """The pipeline's command through the outbox and its audit row, in ``db``'s
    transaction."""
    entity, person = held.procuring_entity, who.email or who.who
    cid = uuid.UUID(row.confirmation_id)
    command: Payload
    if step == "confirm":
        command = RegistrationConfirmed(
            procuring_entity=entity, system=held.system, domain=held.domain,
            user_id=held.user_id, confirmation_id=cid,
            card=held.card, confirmed_by=person)
    else:
        command = HeldRegistrationRejected(
            procuring_entity=entity, system=held.system, domain=held.domain,
            user_id=held.user_id, confirmation_id=cid, rejected_by=person)
    envelope = new_envelope(command, correlation_id=held.user_id, procuring_entity=entity,
                            producer=PRODUCER, occurred_at=archive.clock(),
                            message_id=uuid.uuid5(_IDS, row.confirmation_id))
    enqueue(db, Topics.REGISTRATION_COMMANDS, envelope)
    archive.write(who, request, ACTIONS[step], row.confirmation_id, role=Role.ADMIN.value,
                  entity=entity, detail=f"{held.user_id} request {envelope.message_id}",
                  into=db)
    return str(envelope.message_id)
