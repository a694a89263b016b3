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

A browser gets pages (hub/contract/pages.py, templates/): the case with the contract set's
pages as images (``GET /{token}/preview/{n}.png``), the code, agree and reject forms,
which post to ``/{token}/form/{code,agree,reject,resend}`` with a CSRF field (EDGE-4) and
go through the same steps as the JSON routes, and a page for each refusal.

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
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.contract.pages import (
    PagePreview,
    csrf_cookie,
    csrf_field,
    csrf_refusal,
    csrf_valid,
    render,
    wants_html,
)
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


_REFUSED = ("受け付けられませんでした", "Not accepted")
_HEADINGS = {
    "invalid": ("このリンクは無効です", "This link is not valid"),
    "expired": ("リンクの有効期限が切れています", "This link has expired"),
    "replaced": ("このリンクは新しいリンクに置き換えられました", "This link was replaced"),
    "used": ("このリンクは使用済みです", "This link has been used"),
}


class ReviewRefusalError(HTTPException):
    """A refused review request: its status and the violation (rule, ja, en, next step)."""

    def __init__(self, status: int, violation: RuleViolation, *, resend: bool = False,
                 kind: str = "refused") -> None:
        super().__init__(status, detail={"violations": [violation.model_dump()]})
        self.violation = violation
        self.resend = resend
        """Offer the re-send form on the HTML page (an expired or replaced link)."""
        self.kind = kind
        """What the page's heading says: invalid, expired, replaced, used, or refused."""


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


def _base(path: str) -> str:
    """``/contract/review/{token}`` of any path under it."""
    return "/".join(path.split("/")[:4])


def refusal_page(request: Request, error: ReviewRefusalError, token: str | None = None
                 ) -> HTMLResponse:
    """The refusal as a page: heading, rule, Japanese and English, next step, and a
    re-send form where one can help (an expired or replaced link, codes used up)."""
    base = _base(request.url.path)
    cookie = csrf_cookie(request)
    token = token if token is not None else base.rsplit("/", 1)[-1]
    ja, en = _HEADINGS.get(error.kind, _REFUSED)
    return render("refusal.html.j2", error.status_code, cookie=cookie, heading_ja=ja,
                  heading_en=en, v=error.violation, status=error.status_code,
                  resend_action=f"{base}/form/resend" if error.resend else None,
                  csrf=csrf_field(cookie[0], token),
                  back=base if error.kind == "code" else None)


class ReviewRoute(APIRoute):
    """Answers a refusal as JSON, or as a page when a browser asks for HTML; a malformed
    body as CON-3's 422 with the field, never echoing the input."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except ReviewRefusalError as exc:
                if wants_html(request):
                    return refusal_page(request, exc)
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

        return handler


@dataclass
class Opened:
    """A token that opened a current review link, and its case."""

    token: str
    row: ReviewLinkRow
    state: CaseState


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


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
        policy: ContractPolicy | None = None, preview: PagePreview | None = None) -> APIRouter:
    """``policy``: the city's contract policy, as the process manager's (the defaults
    otherwise); the router's early decisions take it. ``preview``: draws the contract
    set's pages for the HTML review page."""
    policy = policy or ContractPolicy()
    router = APIRouter(prefix="/contract/review", tags=["contract review"],
                       route_class=ReviewRoute)
    pages = preview or PagePreview()

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
               actor: str | None = None, resend: bool = False,
               kind: str = "refused") -> ReviewRefusalError:
        record(request, action, status, opened=opened, case_id=case_id, actor=actor,
               detail=f"{violation.rule_id} {violation.message_en}")
        return ReviewRefusalError(status, violation, resend=resend, kind=kind)

    def open_link(request: Request, token: str, action: str, *, live: bool = True,
                  actor: str | None = None) -> Opened:
        """The link ``token`` opens: 404 when none, 410 when replaced (and, for ``live``,
        when expired or spent)."""
        with Session(engine) as db:
            row = find_link(db, token)
            state = load_case(db, row.case_id) if row is not None else None
        if row is None or state is None:
            raise refuse(request, action, 404, texts.link_unknown(), actor=actor,
                         kind="invalid")
        opened = Opened(token, row, state)
        if state.link is None or str(state.link.link_id) != row.link_id:
            raise refuse(request, action, 410, texts.link_superseded(), opened=opened,
                         actor=actor, resend=True, kind="replaced")
        if not live:
            return opened
        if row.spent_at is not None or state.status is not ContractStatus.REVIEW:
            raise refuse(request, action, 410, texts.link_spent(), opened=opened, actor=actor,
                         kind="used")
        if not state.link.usable_at(clock()):
            raise refuse(request, action, 410,
                         texts.link_expired(f"{_jst(state.link.expires_at)} JST"),
                         opened=opened, actor=actor, resend=True, kind="expired")
        return opened

    def recipient(request: Request, opened: Opened, action: str, by: str) -> str:
        assert opened.state.link is not None
        who = by.lower()
        if who not in opened.state.link.to:
            raise refuse(request, action, 403, texts.not_declared(by, "by"), opened=opened,
                         actor=who)
        return who

    def with_code(request: Request, token: str, action: str, body: AgreeIn,
                  payload: Callable[[Opened], Payload]) -> tuple[Opened, AcceptedOut]:
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
                         opened=opened, actor=who, kind="code")
        return opened, AcceptedOut(request_id=envelope.message_id)

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

    # The steps, one function each; the JSON routes and the page's forms both call them.

    def send_code(request: Request, token: str, body: WhoIn) -> tuple[Opened, CodeSentOut]:
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
            raise refuse(request, "code", 403, texts.codes_used_up(), opened=opened, actor=who,
                         resend=True)
        return opened, CodeSentOut(sent_to=who, expires_at=now + CODE_TTL)

    def agree_step(request: Request, token: str, body: AgreeIn) -> tuple[Opened, AcceptedOut]:
        return with_code(request, token, "agree", body, lambda o: ContractorAgreed(
            case_id=o.state.case_id, link_id=uuid.UUID(o.row.link_id), by=body.by))

    def reject_step(request: Request, token: str, body: RejectIn
                    ) -> tuple[Opened, AcceptedOut]:
        return with_code(request, token, "reject", body, lambda o: ContractorRejected(
            case_id=o.state.case_id, link_id=uuid.UUID(o.row.link_id), by=body.by,
            reason=body.reason))

    def resend_step(request: Request, token: str, body: WhoIn) -> tuple[Opened, AcceptedOut]:
        opened = open_link(request, token, "resend", live=False, actor=body.by.lower())
        return opened, simple(request, opened, "resend", body.by.lower(),
                              ReviewLinkResendRequested(case_id=opened.state.case_id,
                                                        requested_by=body.by))

    refusals: dict[int | str, dict[str, Any]] = {
        code: {"description": text, "model": _Refused}
        for code, text in ((403, "A missing, wrong or expired code, or an address outside "
                                 "the link (CON-3, CON-1)."),
                           (404, "The token opens no review link (CON-3)."),
                           (410, "The link expired, was replaced or was used (CON-3)."))}

    def review_out(opened: Opened) -> ReviewOut:
        s = opened.state
        assert s.link is not None
        return ReviewOut(case_id=s.case_id, subject=s.subject, title=s.title,
                         city_name=s.city_name, contractor_name=s.contractor_name,
                         status=s.status, expires_at=s.link.expires_at,
                         recipients=list(s.link.to))

    def review_page(request: Request, opened: Opened) -> HTMLResponse:
        assert opened.state.document is not None
        with Session(engine) as db:
            pdf = get_document(db, opened.state.document)
        count = pages.page_count(opened.state.document.sha256, pdf)
        shown = list(range(1, min(count, pages.MAX_PAGES) + 1)) if count else []
        cookie = csrf_cookie(request)
        out = review_out(opened)
        return render("review.html.j2", cookie=cookie, heading_ja="電子契約の確認",
                      heading_en="Contract review", case=out, city_name=out.city_name,
                      expires=_jst(out.expires_at), base=_base(request.url.path),
                      pages=shown, page_count=count or 0, width=pages.WIDTH,
                      csrf=csrf_field(cookie[0], opened.token))

    @router.get("/{token}", responses={**refusals, 200: {"content": {"text/html": {}}}})
    def show(token: Token, request: Request) -> Response:
        """The case under review: JSON, or a page for a browser (``Accept: text/html``)."""
        opened = open_link(request, token, "view")
        record(request, "view", 200, opened=opened)
        if wants_html(request):
            return review_page(request, opened)
        return JSONResponse(review_out(opened).model_dump(mode="json"),
                            headers={"Cache-Control": "no-store"})

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

    @router.get("/{token}/preview/{page}.png", include_in_schema=False)
    def preview_page(token: Token, page: int, request: Request) -> Response:
        """Page ``page`` of the contract set as an image, for the review page."""
        opened = open_link(request, token, "preview")
        assert opened.state.document is not None
        with Session(engine) as db:
            pdf = get_document(db, opened.state.document)
        png = pages.png(opened.state.document.sha256, pdf, page)
        record(request, "preview", 200 if png else 404, opened=opened, detail=f"page {page}")
        if png is None:
            return Response(status_code=404, headers={"Cache-Control": "no-store"})
        return Response(png, media_type="image/png", headers={
            "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})

    @router.post("/{token}/code", status_code=202, responses=refusals)
    def code(token: Token, body: WhoIn, request: Request) -> CodeSentOut:
        """Mail a one-time code to ``by`` (one of the link's addresses), needed to agree or
        reject; a new code replaces the last one (CON-3)."""
        return send_code(request, token, body)[1]

    @router.post("/{token}/agree", status_code=202, responses=refusals)
    def agree(token: Token, body: AgreeIn, request: Request) -> AcceptedOut:
        """書類の内容に同意 (CON-2), with the one-time code (CON-3)."""
        return agree_step(request, token, body)[1]

    @router.post("/{token}/reject", status_code=202, responses=refusals)
    def reject(token: Token, body: RejectIn, request: Request) -> AcceptedOut:
        """同意せず却下 (CON-2), with the one-time code (CON-3)."""
        return reject_step(request, token, body)[1]

    @router.post("/{token}/forward", status_code=202, responses=refusals)
    def forward(token: Token, body: ForwardIn, request: Request) -> AcceptedOut:
        """この書類を転送する: a new link to another person of the 申出書 (CON-1)."""
        opened = open_link(request, token, "forward", actor=body.by.lower())
        who = recipient(request, opened, "forward", body.by)
        return simple(request, opened, "forward", who, ContractForwarded(
            case_id=opened.state.case_id, link_id=uuid.UUID(opened.row.link_id), by=body.by,
            to=body.to))

    @router.post("/{token}/resend", status_code=202, responses=refusals)
    def resend(token: Token, body: WhoIn, request: Request) -> AcceptedOut:
        """再配信の依頼 (CON-3): a new link to a declared address, from an expired or
        replaced link too."""
        return resend_step(request, token, body)[1]

    # The page's forms (form-encoded, EDGE-4): the same steps, answered with pages.

    def code_page(request: Request, opened: Opened, token: str, by: str, status: int, *,
                  until: datetime | None = None,
                  error: RuleViolation | None = None) -> HTMLResponse:
        cookie = csrf_cookie(request)
        out = review_out(opened)
        return render("code.html.j2", status, cookie=cookie, heading_ja="同意・差戻し",
                      heading_en="Agree or reject", case=out, city_name=out.city_name,
                      base=_base(request.url.path), by=by, error=error, status=status,
                      until=_jst(until) if until else "",
                      csrf=csrf_field(cookie[0], token))

    def done_page(request: Request, opened: Opened, action: str,
                  accepted: AcceptedOut) -> HTMLResponse:
        if action == "agree":
            texts_ = ("同意を受け付けました。", "Your agreement was received.",
                      "ICカードで電子署名をしてください。ICカードエージェントを起動し、"
                      "利用者メニューの署名依頼（/contractor/jobs）から署名します。署名後、"
                      "発注者が同意すると契約が締結され、締結済みの契約書がメールで届きます。",
                      "Now sign with your IC card: start the card agent and sign the request "
                      "on the contractor menu's signing page (/contractor/jobs). Once the city "
                      "agrees too, the contract is concluded and the signed PDF is mailed.")
        elif action == "reject":
            texts_ = ("差戻しを受け付けました。", "Your rejection was received.",
                      "発注者が契約書類を見直し、新しい確認依頼メールを送ります。",
                      "The city reviews the contract set and sends a new review mail.")
        else:
            texts_ = ("新しい確認用リンクをメールで送ります。",
                      "A new review link is being mailed to you.",
                      "届いたメールのリンクから確認ページを開いてください。このリンクはもう使えません。",
                      "Open the review page from the link in the new mail; this link no "
                      "longer works.")
        done_ja, done_en, next_ja, next_en = texts_
        return render("done.html.j2", 202, heading_ja="電子契約の確認",
                      heading_en="Contract review", city_name=opened.state.city_name,
                      done_ja=done_ja, done_en=done_en, next_ja=next_ja, next_en=next_en,
                      next_link="/contractor/jobs" if action == "agree" else None,
                      request_id=str(accepted.request_id))

    async def form_fields(request: Request, token: str, action: str) -> dict[str, str]:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_valid(request, token, fields.pop("csrf", "")):
            raise refuse(request, action, 403, csrf_refusal())
        return fields

    def invalid_input(error: ValidationError) -> RuleViolation:
        field = ".".join(str(p) for p in error.errors()[0]["loc"]) or "body"
        if field == "code":
            return texts.code_refused("wrong")
        ja, en = {"reason": ("差戻しの理由を入力してください（1000文字まで）。",
                             "Enter why you reject the set (up to 1,000 characters)."),
                  }.get(field, ("メールアドレスが正しくありません。",
                                "The e-mail address is not valid."))
        return RuleViolation(rule_id="CON-3", message_ja=ja, message_en=en, field=field,
                             next_step_ja="入力内容を確認して、もう一度送信してください。",
                             next_step_en="Check what you entered and send it again.")

    @router.post("/{token}/form/{action}", include_in_schema=False)
    async def form_step(token: Token, action: str, request: Request) -> Response:
        """The review page's forms: ``code``, ``agree``, ``reject`` and ``resend``."""
        if action not in ("code", "agree", "reject", "resend"):
            return Response(status_code=404)
        fields = await form_fields(request, token, action)
        models: dict[str, type[WhoIn]] = {"agree": AgreeIn, "reject": RejectIn}
        model = models.get(action, WhoIn)
        try:
            body = model.model_validate(fields)
        except ValidationError as exc:
            violation = invalid_input(exc)
            if action in ("agree", "reject") and "by" in fields and violation.field != "by":
                opened = await run_in_threadpool(open_link, request, token, action)
                record(request, action, 422, opened=opened, actor=fields["by"].lower(),
                       detail=f"{violation.rule_id} {violation.message_en}")
                return code_page(request, opened, token, fields["by"].lower(), 422,
                                 error=violation)
            raise refuse(request, action, 422, violation, resend=action == "resend") from None
        if action == "code":
            opened, sent = await run_in_threadpool(send_code, request, token, body)
            return code_page(request, opened, token, sent.sent_to, 202,
                             until=sent.expires_at)
        try:
            if isinstance(body, RejectIn):
                opened, accepted = await run_in_threadpool(reject_step, request, token, body)
            elif isinstance(body, AgreeIn):
                opened, accepted = await run_in_threadpool(agree_step, request, token, body)
            else:
                opened, accepted = await run_in_threadpool(resend_step, request, token, body)
        except ReviewRefusalError as exc:
            if exc.kind != "code":
                raise
            opened = await run_in_threadpool(open_link, request, token, action)
            return code_page(request, opened, token, body.by.lower(), exc.status_code,
                             error=exc.violation)
        except HTTPException as exc:  # the rules refused the step now (422, refuse_early)
            detail: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {}
            found = detail.get("violations") or [texts.link_spent().model_dump()]
            return refusal_page(request, ReviewRefusalError(
                exc.status_code, RuleViolation.model_validate(found[0])), token)
        return done_page(request, opened, action, accepted)

    return router


def _jst(at: datetime) -> str:
    return at.astimezone(JST).strftime("%Y/%m/%d %H:%M")


class _Refused(BaseModel):
    detail: dict[str, list[RuleViolation]]
