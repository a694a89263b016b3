"""The hub side of the gateway tests: a migrated database, the gateway app, and a small
driver that runs the real registration handlers on the commands the gateway put in the
outbox, storing the events' outcomes as the hub's consumer would."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.db import OutboxRecord
from hub.gateway.config import GatewayConfig
from hub.gateway.outcomes import handle_registration_event
from hub.gateway.routes import build_router
from pipelines.registration.handlers import RegistrationHandlers
from pipelines.registration.models import QualificationRow
from pipelines.registration.store import make_password_verifier
from schemas.envelope import Envelope, new_envelope
from schemas.qualification import QualificationUpdated
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec
from schemas.wire import decode

ENTITY = "mlit"
USER_A = "1234567890"
USER_B = "2222222222"
PASSWORD = "abcd1234"
CONTRACTOR = "北東 次郎"
ADDRESS = "北東市中央町2丁目3番4号"
COMPANIES = {
    USER_A: ("北東組株式会社", CONTRACTOR, ADDRESS),
    USER_B: ("南西建設株式会社", "南西 三郎", "南西市港町1丁目2番3号"),
}
"""user ID → (商号, 契約者 = card holder, head-office address)."""


@dataclass
class DriverContext:
    session: Session
    now: dt.datetime
    emitted: list[Envelope[Any]] = field(default_factory=list)

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        envelope = cause.caused(payload, producer="registration", entity=entity)
        if topic == Topics.REGISTRATION_EVENTS:
            self.emitted.append(envelope)
        return envelope


def gateway_app(cfg: GatewayConfig) -> FastAPI:
    app = FastAPI(title="gateway under test")
    app.include_router(build_router(cfg))
    return app


def seed_qualification(engine: Engine, user_id: str, now: dt.datetime) -> None:
    trade_name, contractor, address = COMPANIES[user_id]
    row = {"user_id": user_id, "trade_name": trade_name, "postal_code": "123-0000",
           "head_office_address": address, "representative_name": "日立 二郎",
           "representative_title": "代表取締役社長", "contractor_name": contractor}
    update = QualificationUpdated.model_validate_json(json.dumps(
        {"procuring_entity": ENTITY, "domain": "works", "rows": [row]}))
    run(engine, new_envelope(update, correlation_id=user_id, procuring_entity=ENTITY,
                             producer="test"), now)
    with Session(engine) as session, session.begin():
        session.execute(sa.update(QualificationRow).where(
            QualificationRow.user_id == user_id).values(  # type: ignore[arg-type]
            password_verifier=make_password_verifier(PASSWORD)))


def run(engine: Engine, envelope: Envelope[Any], now: dt.datetime) -> None:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        ctx = DriverContext(session, now)
        RegistrationHandlers().handlers[type(envelope.payload)](ctx, envelope)
        for event in ctx.emitted:
            handle_registration_event(ctx, event)


def drive(engine: Engine, now: dt.datetime, done: set[int]) -> int:
    """Handle every registration command in the outbox not handled yet; return how many."""
    with Session(engine) as session:
        records = list(session.exec(select(OutboxRecord).where(
            OutboxRecord.topic == Topics.REGISTRATION_COMMANDS.name)))
    count = 0
    for record in records:
        if record.id in done:
            continue
        done.add(record.id or 0)
        run(engine, decode(record.value), now)
        count += 1
    return count
