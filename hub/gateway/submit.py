"""Registration, change and renewal submitted by the agent (REG-7, CHG-1, RNW-6).

Each request is authenticated with fresh card proofs, turned into the registration
pipeline's command (schemas/registration.py) with the card facts the hub read itself
from the verified certificate, and published through the transactional outbox. The
returned request id is the command's message id; the pipeline's answer is found by it
(:mod:`.outcomes`). The password is checked here and never travels (REG-3).
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from hub.gateway.api import ChangeIn, RegistrationIn, RenewalIn
from hub.gateway.config import GatewayConfig
from hub.gateway.errors import GatewayRefusalError, refusal
from hub.gateway.models import ChallengeRow
from hub.gateway.sessions import authenticate, require_active
from hub.outbox import enqueue
from pipelines.registration.queries import verify_password
from schemas.envelope import new_envelope
from schemas.registration import (
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    input_violations,
)
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["submit_change", "submit_registration", "submit_renewal"]


def _publish(cfg: GatewayConfig, build: type[Payload], fields: dict[str, object],
             user_id: str, entity: str) -> str:
    try:
        # Validated from JSON: the commands are strict, and JSON is what they accept.
        command = build.model_validate_json(json.dumps(fields))
    except ValidationError as exc:
        raise GatewayRefusalError(422, input_violations(exc)) from exc
    envelope = new_envelope(command, correlation_id=user_id, procuring_entity=entity,
                            producer=cfg.producer, occurred_at=cfg.now())
    with cfg.transaction() as session:
        enqueue(session, Topics.REGISTRATION_COMMANDS, envelope)
    return str(envelope.message_id)


def submit_registration(cfg: GatewayConfig, body: RegistrationIn) -> str:
    with cfg.transaction() as session:
        card = authenticate(cfg, session, body.proof)
    verified = False
    if body.password is not None:
        with cfg.transaction() as session:
            verified = verify_password(session, body.procuring_entity, body.domain,
                                       body.user_id, body.password.get_secret_value())
    fields = body.model_dump(mode="json", exclude={"proof", "password"})
    fields.update(card=card.facts.model_dump(mode="json"), password_verified=verified)
    return _publish(cfg, CardRegistrationRequested, fields, body.user_id, body.procuring_entity)


def submit_change(cfg: GatewayConfig, body: ChangeIn) -> str:
    with cfg.transaction() as session:
        card = authenticate(cfg, session, body.proof)
    with cfg.transaction() as session:
        active = require_active(cfg, session, card.facts.issuer, card.facts.serial)
    fields = body.model_dump(mode="json", exclude={"proof"})
    fields.update(card=card.facts.model_dump(mode="json"), user_id=active.user_id)
    return _publish(cfg, ContactChangeRequested, fields, active.user_id, body.procuring_entity)


def submit_renewal(cfg: GatewayConfig, body: RenewalIn) -> str:
    with cfg.transaction() as session:
        old_issued = session.get(ChallengeRow, body.old_proof.challenge_id)
        new_issued = session.get(ChallengeRow, body.new_proof.challenge_id)
        if old_issued is None or new_issued is None or not (
            old_issued.created_at < new_issued.created_at
        ):
            raise refusal(422, "RNW-6",
                          ("旧ICカード、新ICカードの順に認証してください。",
                           "Authenticate the old IC card first, then the new one."),
                          ("旧カードから順にもう一度認証してください。",
                           "Start again with the old card."))
        old = authenticate(cfg, session, body.old_proof)
    with cfg.transaction() as session:
        active = require_active(cfg, session, old.facts.issuer, old.facts.serial)
    with cfg.transaction() as session:
        new = authenticate(cfg, session, body.new_proof)
    if new.facts.key == old.facts.key:
        raise refusal(422, "RNW-6",
                      ("新旧のICカードが同じです。", "Old and new card are the same."),
                      ("新しいICカードを差し込んで認証してください。",
                       "Insert the new IC card and authenticate it."))
    fields = body.model_dump(mode="json", exclude={"old_proof", "new_proof"})
    fields.update(old_card=old.facts.model_dump(mode="json"),
                  new_card=new.facts.model_dump(mode="json"), user_id=active.user_id)
    return _publish(cfg, CardRenewalRequested, fields, active.user_id, body.procuring_entity)
