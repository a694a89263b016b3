"""The review page's HTTP side: what the contractor does with a review link (CON-2, CON-3).

The review mail carries a link ``/contract/review/{token}``: the token is 256 random bits
of which the hub keeps only the SHA-256 (pipelines/contract/links.py), so neither the
case number nor a copy of the database opens a review page.

- ``GET /{token}`` shows the case (JSON, or a bilingual HTML page for a browser),
  ``GET /{token}/document`` serves the contract set, while the link works;
- ``POST /{token}/code`` mails a one-time code to the declared address that asks
  (through the hub's mail path: ``proc.mail.requests`` and the mail connector);
- ``POST /{token}/agree`` and ``…/reject`` need that code (the second factor: a leaked
  link alone agrees to nothing); the link is spent once one of them is accepted;
- ``POST /{token}/forward`` (to another person of the 申出書) and ``…/resend`` publish
  the process's commands; a re-send works from an expired or replaced link too, so the
  contractor can always ask for a new one.

Accepted steps answer 202 with the request id (the process manager decides again when
the command arrives; a step its rules refuse now is answered 422 at once). Refusals name
CON-3 (or CON-1) in Japanese and English with the next step: 404 for a token that opens
nothing (forged, guessed, purged), 410 for an expired, replaced or spent link, 403 for a
missing, wrong or expired code or an address outside the link. Every view and action,
refused ones too, is written to the hash-chained audit trail (``hub_audit``: when, what,
who, which link, the case's entity, client address, outcome), a step's row in the
transaction of its command.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# definition time, and they name the router's local session dependency.
import html
import json
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.outbox import enqueue
from pipelines.contract import texts
from pipelines.contract.links import (
    CODE_TTL,
    CodeCheck,
    audit,
    check_code,
    find_link,
    issue_code,
    spend_link,
)
from pipelines.contract.models import ReviewLinkRow
from pipelines.contract.rules import decide
from pipelines.contract.state import CaseState, ContractPolicy
from pipelines.contract.store import get_document, load_case
from schemas.contract import (
    ContractForwarded,
    ContractorAgreed,
    ContractorRejected,
    ContractStatus,
    ReviewLinkResendRequested,
)
from schemas.envelope import JST, new_envelope, utc_now
from schemas.mail import MailAddress, MailKind, MailRequested
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.topics import Topics

__all__ = [
    "AcceptedOut",
    "AgreeIn",
    "CodeSentOut",
    "ForwardIn",
    "RejectIn",
    "ReviewOut",
    "WhoIn",
    "publish_step",
    "refuse_early",
    "review_router",
]

PRODUCER = "hub.contract.review"
Token = Annotated[str, Path(max_length=200, description="The review link's secret token.")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoIn(_In):
    by: MailAddress


class AgreeIn(WhoIn):
    code: str = Field(pattern=r"^[0-9]{6}$", description="The one-time code mailed to `by`.")


class RejectIn(AgreeIn):
    reason: str = Field(min_length=1, max_length=1000)


class ForwardIn(WhoIn):
    to: MailAddress


class ReviewOut(BaseModel):
    case_id: str
    subject: str
    title: str | None
    city_name: str
    contractor_name: str
    status: ContractStatus
    expires_at: datetime
    recipients: list[str] = Field(description="Who may ask for a code and act (CON-1).")


class AcceptedOut(BaseModel):
    request_id: uuid.UUID


class CodeSentOut(BaseModel):
    sent_to: str
    expires_at: datetime


class ReviewRefusalError(HTTPException):
    """A refused review request: its status and the violation (rule, ja, en, next step)."""

    def __init__(self, status: int, violation: RuleViolation, *, resend: bool = False) -> None:
        super().__init__(status, detail={"violations": [violation.model_dump()]})
        self.violation = violation
        self.resend = resend
        """Offer the re-send form on the HTML page (an expired or replaced link)."""


def refuse_early(state: CaseState, payload: Payload, now: datetime,
                 policy: ContractPolicy) -> None:
    """Answer 422 with the rules a step breaks now, rather than only on the events topic.

    The process manager decides again when the command arrives; this is the same pure
    decision taken on the state as the page sees it.
    """
    decision = decide(state, payload, entity=state.procuring_entity, now=now, acted_at=now,
                      policy=policy)
    if decision.rejected:
        raise HTTPException(422, detail={"violations": [
            v.model_dump() for v in decision.violations]})


def _envelope(state: CaseState, payload: Payload, now: datetime, producer: str) -> Any:
    return new_envelope(payload, correlation_id=state.case_id,
                        procuring_entity=state.procuring_entity, producer=producer,
                        occurred_at=now)


def publish_step(engine: Engine, state: CaseState, payload: Payload, now: datetime,
                 producer: str, *, policy: ContractPolicy,
                 also: Callable[[Session], object] | None = None) -> AcceptedOut:
    """A person's step, decided early by the pure rules, then queued for the process
    through the outbox (the process manager decides again when it arrives). ``also``
    writes in the same transaction (the step's audit row, hub/audit.py)."""
    refuse_early(state, payload, now, policy)
    envelope = _envelope(state, payload, now, producer)
    with Session(engine) as db, db.begin():
        enqueue(db, Topics.CONTRACT_COMMANDS, envelope)
        if also is not None:
            also(db)
    return AcceptedOut(request_id=envelope.message_id)


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


_PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>{title}</title></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"""


def _page(title: str, body: str, status: int) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Frame-Options": "DENY"})


def refusal_page(error: ReviewRefusalError, action: str) -> HTMLResponse:
    """The refusal as a page: rule, Japanese and English, next step, and a re-send form
    where one can help (an expired or replaced link)."""
    v = error.violation
    body = (f"<p><strong>{html.escape(v.message_ja)}</strong><br>{html.escape(v.message_en)}</p>"
            f"<p>{html.escape(v.next_step_ja)}<br>{html.escape(v.next_step_en)}</p>"
            f"<p><small>{html.escape(v.rule_id)} / HTTP {error.status_code}</small></p>")
    if error.resend:
        body += (f'<form method="post" action="{html.escape(action)}">'
                 '<label>メールアドレス / E-mail address '
                 '<input type="email" name="by" required maxlength="100"></label> '
                 '<button type="submit">リンクを再送 / Send the link again</button></form>')
    return _page("電子契約の確認 / Contract review", body, error.status_code)


def _review_page(out: ReviewOut) -> HTMLResponse:
    rows = [("案件 / Case", out.case_id), ("件名 / Subject", out.subject),
            ("契約書 / Contract set", out.title or "-"), ("発注者 / City", out.city_name),
            ("受注者 / Contractor", out.contractor_name),
            ("有効期限 / Valid until", out.expires_at.astimezone(JST).strftime(
                "%Y/%m/%d %H:%M"))]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)
    body = (f"<table>{table}</table>"
            '<p><a href="document">契約書を開く / Open the contract set</a></p>'
            "<p>同意または差戻しには、ご自身のアドレスに届く確認コードが必要です。<br>"
            "Agreeing or rejecting needs the confirmation code mailed to your address.</p>")
    return _page("電子契約の確認 / Contract review", body, 200)


class ReviewRoute(APIRoute):
    """Answers a refusal as JSON, or as a page when a browser asks for HTML; a malformed
    body as CON-3's 422 with the field, never echoing the input."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except ReviewRefusalError as exc:
                if _wants_html(request):
                    return refusal_page(exc, _resend_action(request.url.path))
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

        return handler


def _resend_action(path: str) -> str:
    parts = path.rstrip("/").split("/")
    # /contract/review/{token}[/{action}]: the form posts to /contract/review/{token}/resend
    return "/".join([*parts[:4], "resend"]) if len(parts) >= 4 else path


@dataclass
class Opened:
    """A token that opened a current review link, and its case."""

    token: str
    row: ReviewLinkRow
    state: CaseState


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _who(request: Request) -> WhoIn:
    """The re-send's body: JSON, or the HTML refusal page's form."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        else:
            fields = json.loads(raw)
        return WhoIn.model_validate(fields)
    except (ValueError, ValidationError, RecursionError) as exc:
        raise ReviewRefusalError(422, RuleViolation(
            rule_id="CON-3", message_ja="メールアドレスが正しくありません。",
            message_en="The e-mail address is not valid.",
            next_step_ja="確認依頼メールの宛先のアドレスを入力してください。",
            next_step_en="Enter the address the review mail was sent to.",
            field="by")) from exc


def _code_mail(state: CaseState, to: str, code: str, expires_at: datetime) -> MailRequested:
    until = expires_at.astimezone(JST).strftime("%Y/%m/%d %H:%M")
    minutes = int(CODE_TTL.total_seconds() // 60)
    return MailRequested(
        mail_id=uuid.uuid4(), kind=MailKind.GENERIC, to=(to,),
        values={"subject": f"電子契約の確認コード（{state.subject}）",
                "body_1": f"{state.contractor_name} 様",
                "body_2": "電子契約の同意・差戻しに必要な確認コードをお知らせします。",
                "body_3": f"確認コード : {code}",
                "body_4": f"有効期限 : {until}（{minutes}分間）",
                "body_5": f"Your confirmation code for the contract review: {code} "
                          f"(valid {minutes} minutes).",
                "body_6": "このコードを依頼していない場合は、このメールを破棄し、"
                          f"{state.city_name}の契約担当に連絡してください。"})


def review_router(  # noqa: PLR0915 -- one router, its routes side by side
        engine: Engine, clock: Callable[[], datetime] = utc_now, *,
        policy: ContractPolicy | None = None) -> APIRouter:
    """``policy``: the city's contract policy, as the process manager's (the defaults
    otherwise); the router's early decisions take it."""
    policy = policy or ContractPolicy()
    router = APIRouter(prefix="/contract/review", tags=["contract review"],
                       route_class=ReviewRoute)

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    def record(request: Request, action: str, status: int, *, opened: Opened | None = None,
               case_id: str | None = None, actor: str | None = None,
               detail: str | None = None) -> None:
        with Session(engine) as db, db.begin():
            audit(db, action=action, status=status, client=_client(request), at=clock(),
                  case_id=opened.state.case_id if opened else case_id,
                  link_id=opened.row.link_id if opened else None, actor=actor, detail=detail,
                  entity=opened.state.procuring_entity if opened else None, durable=False)

    def refuse(request: Request, action: str, status: int, violation: RuleViolation, *,
               opened: Opened | None = None, case_id: str | None = None,
               actor: str | None = None, resend: bool = False) -> ReviewRefusalError:
        record(request, action, status, opened=opened, case_id=case_id, actor=actor,
               detail=f"{violation.rule_id} {violation.message_en}")
        return ReviewRefusalError(status, violation, resend=resend)

    def open_link(request: Request, token: str, action: str, *, live: bool = True,
                  actor: str | None = None) -> Opened:
        """The link ``token`` opens: 404 when none, 410 when replaced (and, for ``live``,
        when expired or spent)."""
        with Session(engine) as db:
            row = find_link(db, token)
            state = load_case(db, row.case_id) if row is not None else None
        if row is None or state is None:
            raise refuse(request, action, 404, texts.link_unknown(), actor=actor)
        opened = Opened(token, row, state)
        if state.link is None or str(state.link.link_id) != row.link_id:
            raise refuse(request, action, 410, texts.link_superseded(), opened=opened,
                         actor=actor, resend=True)
        if not live:
            return opened
        if row.spent_at is not None or state.status is not ContractStatus.REVIEW:
            raise refuse(request, action, 410, texts.link_spent(), opened=opened, actor=actor)
        if not state.link.usable_at(clock()):
            raise refuse(request, action, 410,
                         texts.link_expired(state.link.expires_at.isoformat()),
                         opened=opened, actor=actor, resend=True)
        return opened

    def recipient(request: Request, opened: Opened, action: str, by: str) -> str:
        assert opened.state.link is not None
        who = by.lower()
        if who not in opened.state.link.to:
            raise refuse(request, action, 403, texts.not_declared(by, "by"), opened=opened,
                         actor=who)
        return who

    def with_code(request: Request, token: str, action: str, body: AgreeIn,
                  payload: Callable[[Opened], Payload]) -> AcceptedOut:
        """A step that needs the one-time code: checked, the link spent and the command
        queued in one transaction (a wrong try counts even so)."""
        opened = open_link(request, token, action, actor=body.by.lower())
        who = recipient(request, opened, action, body.by)
        now = clock()
        step = payload(opened)
        refuse_early(opened.state, step, now, policy)
        envelope = _envelope(opened.state, step, now, PRODUCER)
        with Session(engine) as db, db.begin():
            row = find_link(db, token, for_update=True)
            if row is None:  # purged meanwhile
                result = CodeCheck.NONE
            else:
                result = check_code(db, row, token, by=who, code=body.code, now=now)
            if row is not None and result is CodeCheck.OK:
                spend_link(db, row, now)
                enqueue(db, Topics.CONTRACT_COMMANDS, envelope)
                audit(db, action=action, status=202, client=_client(request), at=now,
                      case_id=opened.state.case_id, link_id=opened.row.link_id, actor=who,
                      detail=str(envelope.message_id),
                      entity=opened.state.procuring_entity)
        if result is not CodeCheck.OK:
            raise refuse(request, action, 403, texts.code_refused(result.value),
                         opened=opened, actor=who)
        return AcceptedOut(request_id=envelope.message_id)

    def simple(request: Request, opened: Opened, action: str, who: str,
               step: Payload) -> AcceptedOut:
        """A step without the code: its command and its audit row in one transaction."""
        now = clock()
        refuse_early(opened.state, step, now, policy)
        envelope = _envelope(opened.state, step, now, PRODUCER)
        with Session(engine) as db, db.begin():
            enqueue(db, Topics.CONTRACT_COMMANDS, envelope)
            audit(db, action=action, status=202, client=_client(request), at=now,
                  case_id=opened.state.case_id, link_id=opened.row.link_id, actor=who,
                  detail=str(envelope.message_id), entity=opened.state.procuring_entity)
        return AcceptedOut(request_id=envelope.message_id)

    refusals: dict[int | str, dict[str, Any]] = {
        code: {"description": text, "model": _Refused}
        for code, text in ((403, "A missing, wrong or expired code, or an address outside "
                                 "the link (CON-3, CON-1)."),
                           (404, "The token opens no review link (CON-3)."),
                           (410, "The link expired, was replaced or was used (CON-3)."))}

    @router.get("/{token}", responses={**refusals, 200: {"content": {"text/html": {}}}})
    def show(token: Token, request: Request) -> Response:
        """The case under review: JSON, or a page for a browser (``Accept: text/html``)."""
        opened = open_link(request, token, "view")
        link = opened.state.link
        assert link is not None
        s = opened.state
        out = ReviewOut(case_id=s.case_id, subject=s.subject, title=s.title,
                        city_name=s.city_name, contractor_name=s.contractor_name,
                        status=s.status, expires_at=link.expires_at, recipients=list(link.to))
        record(request, "view", 200, opened=opened)
        if _wants_html(request):
            return _review_page(out)
        return JSONResponse(out.model_dump(mode="json"), headers={"Cache-Control": "no-store"})

    @router.get("/{token}/document", responses={
        **refusals, 200: {"content": {"application/pdf": {}}}})
    def document(token: Token, request: Request,
                 db: Annotated[Session, Depends(session)]) -> Response:
        """The contract set under review (PDF)."""
        opened = open_link(request, token, "document")
        assert opened.state.document is not None
        pdf = get_document(db, opened.state.document)
        record(request, "document", 200, opened=opened)
        return Response(pdf, media_type="application/pdf", headers={"Cache-Control": "no-store"})

    @router.post("/{token}/code", status_code=202, responses=refusals)
    def code(token: Token, body: WhoIn, request: Request) -> CodeSentOut:
        """Mail a one-time code to ``by`` (one of the link's addresses), needed to agree or
        reject; a new code replaces the last one (CON-3)."""
        opened = open_link(request, token, "code", actor=body.by.lower())
        who = recipient(request, opened, "code", body.by)
        now = clock()
        with Session(engine) as db, db.begin():
            row = find_link(db, token, for_update=True)
            sent = issue_code(db, row, token, who, now) if row is not None else None
            if sent is not None:
                mail = _code_mail(opened.state, who, sent, now + CODE_TTL)
                enqueue(db, Topics.MAIL_REQUESTS, _envelope(opened.state, mail, now, PRODUCER))
                audit(db, action="code", status=202, client=_client(request), at=now,
                      case_id=opened.state.case_id, link_id=opened.row.link_id, actor=who,
                      entity=opened.state.procuring_entity)
        if sent is None:
            raise refuse(request, "code", 403, texts.codes_used_up(), opened=opened, actor=who)
        return CodeSentOut(sent_to=who, expires_at=now + CODE_TTL)

    @router.post("/{token}/agree", status_code=202, responses=refusals)
    def agree(token: Token, body: AgreeIn, request: Request) -> AcceptedOut:
        """書類の内容に同意 (CON-2), with the one-time code (CON-3)."""
        return with_code(request, token, "agree", body, lambda o: ContractorAgreed(
            case_id=o.state.case_id, link_id=uuid.UUID(o.row.link_id), by=body.by))

    @router.post("/{token}/reject", status_code=202, responses=refusals)
    def reject(token: Token, body: RejectIn, request: Request) -> AcceptedOut:
        """同意せず却下 (CON-2), with the one-time code (CON-3)."""
        return with_code(request, token, "reject", body, lambda o: ContractorRejected(
            case_id=o.state.case_id, link_id=uuid.UUID(o.row.link_id), by=body.by,
            reason=body.reason))

    @router.post("/{token}/forward", status_code=202, responses=refusals)
    def forward(token: Token, body: ForwardIn, request: Request) -> AcceptedOut:
        """この書類を転送する: a new link to another person of the 申出書 (CON-1)."""
        opened = open_link(request, token, "forward", actor=body.by.lower())
        who = recipient(request, opened, "forward", body.by)
        return simple(request, opened, "forward", who, ContractForwarded(
            case_id=opened.state.case_id, link_id=uuid.UUID(opened.row.link_id), by=body.by,
            to=body.to))

    @router.post("/{token}/resend", status_code=202, responses=refusals,
                 response_model=AcceptedOut, openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": WhoIn.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": WhoIn.model_json_schema()}}}})
    def resend(token: Token, request: Request,
               body: Annotated[WhoIn, Depends(_who)]) -> Response:
        """再配信の依頼 (CON-3): a new link to a declared address, from an expired or
        replaced link's page too (its form gets a page back)."""
        opened = open_link(request, token, "resend", live=False, actor=body.by.lower())
        accepted = simple(request, opened, "resend", body.by.lower(),
                          ReviewLinkResendRequested(case_id=opened.state.case_id,
                                                    requested_by=body.by))
        if _wants_html(request):
            return _page("電子契約の確認 / Contract review",
                         "<p>新しい確認用リンクをメールで送ります。<br>"
                         "A new review link is being mailed to you.</p>", 202)
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)

    return router


class _Refused(BaseModel):
    detail: dict[str, list[RuleViolation]]
