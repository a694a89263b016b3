"""The gateway's HTTP API for card agents (FastAPI router, documented in OpenAPI).

Mount it into the hub's app: ``app.include_router(build_router(config))``.

- ``POST /gateway/challenges``: a fresh challenge (single use, short-lived).
- ``POST /gateway/sessions``: log in with a card proof for one entity, system and
  domain (REG-1, RNW-7, CHG-2); the session holds only there.
- ``POST /gateway/registrations``, ``/changes``, ``/renewals``: submit 利用者登録 /
  変更 / ICカード更新 (REG-7, CHG-1, RNW-6) to the registration pipeline through the
  transactional outbox; ``GET /gateway/requests/{id}``: the outcome (REG-10).
- ``GET /gateway/jobs``, ``GET /gateway/jobs/{id}``, ``GET /gateway/jobs/{id}/document``,
  ``PUT /gateway/jobs/{id}/signed``: the caller's own signing jobs, the PDF to sign and
  the signed PDF (CON-5, PIN-2). PDFs travel as ``application/pdf`` bytes with their
  SHA-256 (``Repr-Digest`` down, ``Content-Digest`` up, RFC 9530).

Handlers are plain functions: FastAPI runs them in its worker threads, where database
calls and pyHanko's validation may block.
"""

# No `from __future__ import annotations`: FastAPI must see the dependencies of the
# nested route functions (bound to the config) as objects, not as unresolvable strings.

import base64
import hashlib
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
from hub.gateway.errors import GatewayRefusalError, refusal
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
        """One of the caller's jobs (its PDF at ``document_url``); another user's job is 404."""
        with cfg.transaction() as session:
            row = get_job(session, who, job_id, pdfs=False)
            return JobDetailOut.model_validate(
                {**_job(row), "document_url": f"/gateway/jobs/{row.id}/document"})

    @router.get("/jobs/{job_id}/document", response_class=Response,
                responses={200: {"content": {"application/pdf": {
                    "schema": {"type": "string", "format": "binary"}}},
                    "description": "The PDF to sign; ``Repr-Digest: sha-256=:…:`` is the "
                                   "job's document_sha256."}})
    def job_document(job_id: str, who: Annotated[CardSession, Depends(caller)]) -> Response:
        """The PDF of one of the caller's jobs, as bytes; the agent signs it only if its
        SHA-256 is the job's ``document_sha256``."""
        with cfg.transaction() as session:
            row = get_job(session, who, job_id)
            digest = base64.b64encode(bytes.fromhex(row.document_sha256)).decode()
            return Response(row.document, media_type="application/pdf", headers={
                "Repr-Digest": f"sha-256=:{digest}:", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"})

    @router.put("/jobs/{job_id}/signed", response_model=JobOut,
                openapi_extra={"requestBody": {"content": {"application/pdf": {
                    "schema": {"type": "string", "format": "binary"}}}, "required": True}})
    def signed(job_id: str, who: Annotated[CardSession, Depends(caller)],
               pdf: Annotated[bytes, Depends(_pdf_body)]) -> JobOut:
        """The signed PDF; accepted only if pyHanko validates it (CON-5, PIN-2)."""
        return JobOut.model_validate(_job(accept_signed(cfg, who, job_id, pdf)))

    return router


async def _pdf_body(request: Request) -> bytes:
    """The request's PDF: ``Content-Type: application/pdf`` only; with a
    ``Content-Digest`` (RFC 9530), its ``sha-256`` must be the body's (EDGE-3)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/pdf":
        got = kind[:60] or "none"
        raise refusal(415, "EDGE-3", (
            f"署名済みPDFは Content-Type: application/pdf で送ってください(受信: {got})。",
            f"Send the signed PDF as Content-Type: application/pdf (got {got!r})."),
            ("ICカードエージェントを最新にして署名し直してください。",
             "Update the card agent and sign again."))
    body = await request.body()
    announced = request.headers.get("content-digest")
    if announced is not None:
        expected = _sha256_of(announced)
        if expected is None:
            raise refusal(400, "EDGE-3", (
                "Content-Digest ヘッダーを読み取れません(sha-256=:…: の形式で送ってください)。",
                "The Content-Digest header cannot be read (send sha-256=:…:)."),
                ("ICカードエージェントを最新にして署名し直してください。",
                 "Update the card agent and sign again."))
        if expected and expected != hashlib.sha256(body).digest():
            raise refusal(422, "EDGE-3", (
                "受信したPDFが送信時のもの(Content-Digest)と一致しません。",
                "The PDF received is not the one sent (its SHA-256 differs from "
                "Content-Digest)."),
                ("通信経路を確認して、もう一度送信してください。",
                 "Check the connection and send it again."))
    return body


def _sha256_of(header: str) -> bytes | None:
    """The ``sha-256`` digest of a ``Content-Digest`` field (RFC 9530: a dictionary of
    byte sequences): None when it cannot be read, empty when it names only other
    algorithms (they are skipped, as RFC 9530 allows)."""
    for member in header.split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() != "sha-256":
            continue
        value = value.strip()
        if len(value) < 2 or value[0] != ":" or value[-1] != ":":
            return None
        try:
            digest = base64.b64decode(value[1:-1], validate=True)
        except ValueError:
            return None
        return digest if len(digest) == 32 else None
    return b""


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
