"""The gateway's HTTP API for card agents (FastAPI router, documented in OpenAPI).

Mount it into the hub's app: ``app.include_router(build_router(config))``.

- ``POST /gateway/challenges``: a fresh challenge (single use, short-lived).
- ``POST /gateway/sessions``: log in with a card proof for one entity, system and
  domain (REG-1, RNW-7, CHG-2); the session holds only there.
- ``POST /gateway/registrations``, ``/changes``, ``/renewals``: submit 利用者登録 /
  変更 / ICカード更新 (REG-7, CHG-1, RNW-6) to the registration pipeline through the
  transactional outbox; ``GET /gateway/requests/{id}``: the outcome (REG-10).
- ``GET /gateway/jobs``, ``GET /gateway/jobs/{id}``, ``PUT /gateway/jobs/{id}/signed``:
  the caller's own signing jobs and the signed PDF (CON-5, PIN-2).

Handlers are plain functions: FastAPI runs them in its worker threads, where database
calls and pyHanko's validation may block.
"""

# No `from __future__ import annotations`: FastAPI must see the dependencies of the
# nested route functions (bound to the config) as objects, not as unresolvable strings.

import base64
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from hub.gateway.api import (
    ChallengeOut,
    ChangeIn,
    JobDetailOut,
    JobOut,
    LoginIn,
    OutcomeOut,
    RegistrationIn,
    RenewalIn,
    RequestAcceptedOut,
    SessionOut,
)
from hub.gateway.cardauth import issue_challenge
from hub.gateway.config import GatewayConfig
from hub.gateway.errors import GatewayRefusalError
from hub.gateway.jobs import accept_signed, get_job, list_jobs
from hub.gateway.models import SigningJobRow
from hub.gateway.outcomes import outcome
from hub.gateway.sessions import CardSession, check_token, login
from hub.gateway.submit import submit_change, submit_registration, submit_renewal
from schemas.rejection import RuleViolation

__all__ = ["build_router"]


def _job(row: SigningJobRow) -> dict[str, Any]:
    return row.model_dump(exclude={"document", "signed_document", "network", "user_id",
                                   "signer_issuer", "signer_serial"})


def build_router(cfg: GatewayConfig) -> APIRouter:
    """The gateway's router, bound to ``cfg``."""
    router = APIRouter(prefix="/gateway", tags=["card-agent gateway"], route_class=RuleRoute)

    def caller(authorization: Annotated[str | None, Header()] = None) -> CardSession:
        return check_token(cfg, authorization)

    @router.post("/challenges", response_model=ChallengeOut)
    def new_challenge() -> ChallengeOut:
        """A fresh challenge for the card to sign (single use)."""
        with cfg.transaction() as session:
            row = issue_challenge(session, cfg.now(), cfg.challenge_ttl)
        return ChallengeOut(challenge_id=row.id, nonce=base64.b64encode(row.nonce).decode(),
                            expires_at=row.expires_at)

    @router.post("/sessions", response_model=SessionOut)
    def new_session(body: LoginIn) -> SessionOut:
        """Log in for one entity, system and domain: the card must be registered and active
        there (REG-1 unknown or not registered there, RNW-7 renewed away, CHG-2 another
        domain, REG-6 expired, WIN-2 maintenance)."""
        return login(cfg, body)

    @router.post("/registrations", response_model=RequestAcceptedOut, status_code=202)
    def register(body: RegistrationIn) -> RequestAcceptedOut:
        """利用者登録 (REG-1..REG-11); the outcome comes from GET /requests/{id}."""
        return RequestAcceptedOut(request_id=submit_registration(cfg, body))

    @router.post("/changes", response_model=RequestAcceptedOut, status_code=202)
    def change(body: ChangeIn) -> RequestAcceptedOut:
        """利用者変更 of the authenticating card's contacts (CHG-1..CHG-4)."""
        return RequestAcceptedOut(request_id=submit_change(cfg, body))

    @router.post("/renewals", response_model=RequestAcceptedOut, status_code=202)
    def renew(body: RenewalIn) -> RequestAcceptedOut:
        """ICカード更新: the old card's proof, then the new card's (RNW-1..RNW-9)."""
        return RequestAcceptedOut(request_id=submit_renewal(cfg, body))

    @router.get("/requests/{request_id}", response_model=OutcomeOut)
    def request_outcome(request_id: str) -> OutcomeOut:
        """pending, done (企業ID and summary, REG-10), rejected (rule IDs), needs-confirmation."""
        with cfg.transaction() as session:
            return outcome(session, request_id)

    @router.get("/jobs", response_model=list[JobOut])
    def jobs(who: Annotated[CardSession, Depends(caller)]) -> list[JobOut]:
        """The caller's own signing jobs, oldest first."""
        with cfg.transaction() as session:
            return [JobOut.model_validate(_job(r)) for r in list_jobs(session, who)]

    @router.get("/jobs/{job_id}", response_model=JobDetailOut)
    def job(job_id: str, who: Annotated[CardSession, Depends(caller)]) -> JobDetailOut:
        """One of the caller's jobs with its PDF; another user's job is 404."""
        with cfg.transaction() as session:
            row = get_job(session, who, job_id)
            return JobDetailOut.model_validate(
                {**_job(row), "document": base64.b64encode(row.document).decode()})

    @router.put("/jobs/{job_id}/signed", response_model=JobOut,
                openapi_extra={"requestBody": {"content": {"application/pdf": {
                    "schema": {"type": "string", "format": "binary"}}}, "required": True}})
    def signed(job_id: str, who: Annotated[CardSession, Depends(caller)],
               pdf: Annotated[bytes, Depends(_pdf_body)]) -> JobOut:
        """The signed PDF; accepted only if pyHanko validates it (CON-5, PIN-2)."""
        return JobOut.model_validate(_job(accept_signed(cfg, who, job_id, pdf)))

    return router


async def _pdf_body(request: Request) -> bytes:
    return await request.body()


def _rule_for(loc: tuple[Any, ...]) -> str:
    # Input errors name the rule of the field: card proofs PIN-2, lookup fields REG-3,
    # everything typed for the registration REG-7.
    names = {str(p) for p in loc}
    if names & {"proof", "old_proof", "new_proof", "challenge_id", "signature", "certificate"}:
        return "PIN-2"
    if names & {"trade_name", "user_id", "password"}:
        return "REG-3"
    return "REG-7"


class RuleRoute(APIRoute):
    """Answers a malformed body with rule violations instead of FastAPI's bare 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except RequestValidationError as exc:
                violations = []
                for err in exc.errors():
                    loc = tuple(p for p in err["loc"] if p != "body")
                    field = ".".join(str(p) for p in loc) or "(body)"
                    violations.append(RuleViolation(
                        rule_id=_rule_for(loc),
                        message_ja=f"入力項目「{field}」が正しくありません({err['msg']})。",
                        message_en=f"The field {field!r} is not valid: {err['msg']}.",
                        next_step_ja="入力内容(文字数・半角/全角・形式)を確認し、修正して再送信してください。",
                        next_step_en="Check the length, half-width/full-width and format, "
                                     "correct it and send again.",
                        field=field,
                    ))
                refusal = GatewayRefusalError(422, violations)
                return JSONResponse({"detail": refusal.detail}, status_code=422)

        return handler
