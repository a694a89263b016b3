"""Staff API around identity: the local store's log-in, who am I, the audit trail, and the
entity's registrations and dead letters.

``POST /auth/token`` (form: ``grant_type=password``, ``username``, ``password``) issues a
short-lived token for a person of the built-in local user store (only when the store is
on; an OpenID Connect provider issues its own). ``GET /staff/me`` shows the caller as the
hub sees it. ``GET /staff/audit`` lists audit rows of the caller's entities, for 監査
(``auditor``) only; ``GET /staff/audit/verify`` checks the hash chain. Both write their
own audit row (docs/identity.md). ``GET /staff/registrations`` (契約担当, 管理者, 監査),
``GET /staff/dead-letters`` (管理者, 監査) and ``POST /staff/dead-letters/{id}/replay``
(管理者) are thin: the checks, queries and audit rows are :mod:`hub.staff_queries`'.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# definition time, and they name the router's local dependencies.
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit, staff_queries
from hub.contract.archive_api import client_address
from hub.identity import Principal, Role, StaffIdentity, denied_role
from hub.staff_queries import DeadLetterOut, DeadLetterSource, RegistrationOut
from schemas.envelope import utc_now
from schemas.rejection import RuleViolation

__all__ = ["AuditRowOut", "MeOut", "TokenOut", "staff_router"]


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 -- the scheme's name
    expires_in: int


class MeOut(BaseModel):
    subject: str
    kind: str
    email: str | None
    entities: list[str]
    roles: list[str]


class AuditRowOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_kind: str
    role: str
    entity: str
    action: str
    target: str
    client: str
    outcome: str
    detail: str
    hash: str


_BAD_LOGIN = RuleViolation(
    rule_id="IAM-1", message_ja="利用者名またはパスワードが正しくありません。",
    message_en="Wrong user name or password.",
    next_step_ja="入力を確かめてもう一度ログインしてください。忘れた場合は管理者に再設定を"
                 "依頼してください。",
    next_step_en="Check them and log in again; if you forgot the password, ask an "
                 "administrator to set a new one.")


def staff_router(engine: Engine, identity: StaffIdentity,
                 clock: Callable[[], datetime] = utc_now,
                 dead_letters: DeadLetterSource | None = None) -> APIRouter:
    """The routes; the dead-letter routes only with ``dead_letters`` (the hub passes its
    Kafka dead-letter topics)."""
    router = APIRouter(tags=["staff identity"])

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Principal:
        # On the event loop when no network is needed; a provider's first token (which
        # may fetch its keys) in a worker thread.
        who = identity.known(authorization)
        if who is None:
            who = await run_in_threadpool(identity.principal, authorization)
        return who

    caller_t = Annotated[Principal, Depends(caller)]

    def write(who: Principal, request: Request, action: str, *, role: str = "",
              outcome: str = "ok", detail: str = "") -> None:
        scope = who.entity_filter()
        entity = ",".join(sorted(scope)) if scope is not None else "*"
        audit.record_alone(engine, actor=who.who, actor_kind=who.kind, action=action,
                           target="hub_audit", at=clock(), role=role, entity=entity,
                           client=client_address(request), outcome=outcome, detail=detail)

    if identity.users is not None and identity.local is not None:
        users, local = identity.users, identity.local

        @router.post("/auth/token")
        def token(grant_type: Annotated[str, Form()], username: Annotated[str, Form()],
                  password: Annotated[str, Form()]) -> TokenOut:
            if grant_type != "password":
                raise HTTPException(400, detail={"error": "unsupported_grant_type"})
            who = users.authenticate(username, password)
            if who is None:
                raise HTTPException(401, detail={"violations": [_BAD_LOGIN.model_dump()]})
            return TokenOut(access_token=local.issue(who), expires_in=local.ttl_s)

    @router.get("/staff/me")
    def me(who: caller_t) -> MeOut:
        return MeOut(subject=who.subject, kind=who.kind, email=who.email,
                     entities=sorted(who.entities), roles=sorted(who.roles))

    def auditor(who: Principal, request: Request, action: str) -> None:
        if Role.AUDITOR not in who.roles:
            write(who, request, action, outcome="denied", detail="role")
            raise denied_role({Role.AUDITOR})

    @router.get("/staff/audit")
    def audit_rows(who: caller_t, request: Request,
                   since: Annotated[datetime | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditRowOut]:
        auditor(who, request, "audit.list")
        scope = who.entity_filter()
        with Session(engine) as db:
            found = audit.rows(db, entities=sorted(scope) if scope is not None else None,
                               since=since, limit=limit)
            out = [AuditRowOut.model_validate(r, from_attributes=True) for r in found]
        write(who, request, "audit.list", role=Role.AUDITOR.value, detail=f"{len(out)} row(s)")
        return out

    @router.get("/staff/audit/verify")
    def audit_verify(who: caller_t, request: Request) -> dict[str, Any]:
        auditor(who, request, "audit.verify")
        with Session(engine) as db:
            report = audit.verify(db)
        write(who, request, "audit.verify", role=Role.AUDITOR.value,
              outcome="ok" if report.ok else "failed", detail=report.reason)
        return {"ok": report.ok, "checked": report.checked, "broken_id": report.broken_id,
                "reason": report.reason, "last_hash": report.last_hash}

    @router.get("/staff/registrations")
    def staff_registrations(who: caller_t, request: Request,
                            since: Annotated[datetime | None, Query()] = None,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 100
                            ) -> list[RegistrationOut]:
        return staff_queries.registrations(engine, who, client=client_address(request),
                                           at=clock(), since=since, limit=limit)

    if dead_letters is not None:
        source = dead_letters

        @router.get("/staff/dead-letters")
        async def staff_dead_letters(who: caller_t, request: Request) -> list[DeadLetterOut]:
            return await staff_queries.dead_letters(engine, who, source,
                                                    client=client_address(request), at=clock())

        @router.post("/staff/dead-letters/{dead_letter_id}/replay")
        async def staff_replay(who: caller_t, request: Request,
                               dead_letter_id: str) -> DeadLetterOut:
            return await staff_queries.replay_dead_letter(
                engine, who, source, dead_letter_id, client=client_address(request),
                clock=clock)

    return router
