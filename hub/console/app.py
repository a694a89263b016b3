"""The staff console: server-rendered pages under ``/console`` (FastAPI + Jinja2, plain
HTML forms, no script), in Japanese with English (``?lang=en``), for the procuring
entities' staff (docs/console.md).

Log-in: a person of the local user store (``hub users add``) with the form, or through
the staff's OpenID Connect provider (authorization code with PKCE, the public client
``staff.oidc.client_id``). Either way the page keeps the access token in a cookie
(HttpOnly, SameSite=Lax, Secure when the hub serves TLS, path ``/console``) and every
request resolves it again with :class:`hub.identity.StaffIdentity`, as the JSON API
does: an expired or unknown token leads back to the log-in page. Every form carries a
CSRF token, an HMAC of the session's token under the console's own key
(``RUN_DIR/console-key``), checked before any step.

A page shows only the caller's entities and offers only what the caller's roles allow;
another entity's case answers the 403 page naming IAM-3. Every step and read goes through
:class:`hub.contract.archive_api.ArchiveService`, the API's own service, so it takes the
same rules and leaves the same audit rows; no page writes the database by itself. The
デッドレター page replays with :func:`hub.dlq.replay`, the コネクタ page steers with
:class:`hub.control.ConnectorControl` (the control API's), and the REG-11 steps publish the
registration pipeline's commands (:mod:`hub.console.held`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.console import texts, views
from hub.console.deadletters import LetterFilter, choices, letter_entity, matching
from hub.console.held import Step, decide_held
from hub.contract.archive_api import ArchiveService, ContractQuery, scope_of
from hub.control import UNKNOWN, ConnectorControl
from hub.dlq import DeadLetter, read_dead_letters, replay
from hub.identity import Principal, Role, StaffIdentity, denied_role
from hub.settings import Settings
from pipelines.contract import archive as contract_list
from pipelines.contract.archive import certificate_pdf
from schemas.contract import ContractStatus
from schemas.envelope import JST, utc_now
from schemas.rejection import RuleViolation

__all__ = ["ConsoleConfig", "console_router"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "hub_console"
LANG_COOKIE = "hub_console_lang"
PRE_COOKIE = "hub_console_pre"
"""Before log-in: the nonce the log-in form's CSRF token and the provider's state and
PKCE verifier are bound to."""
PREFIX = "/console"

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}
"""Every page: no script at all, no framing (clickjacking), forms only to the hub, no copy
of a case's page kept by the browser or a proxy."""

FILTER_FIELDS = ("topic", "reason", "rule", "entity", "since")
"""The デッドレター list's filters, in the query string and in the filtered replay's form."""

REPLAY_SET_MAX = 500
"""At most this many dead letters are replayed by one "replay all shown" (oldest first);
the rest stay for the next one (docs/console.md)."""

BAD_SET = RuleViolation(
    rule_id="OPS-4", message_ja="絞り込みの日付が正しくないため、まとめて再送できません。",
    message_en="The filter's day is not a valid date, so nothing was replayed.",
    next_step_ja="デッドレター一覧で日付を YYYY-MM-DD で選び直してから再送してください。",
    next_step_en="Choose the day again (YYYY-MM-DD) on the dead-letter list, then replay.")

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(("j2", "html")))


@dataclass(frozen=True)
class ConsoleConfig:
    """``secure``: cookies only over TLS (the hub serves TLS); ``public_base``: the hub's
    address as the browser reaches it (the provider redirects back to it);
    ``oidc_client_id``: the provider's public client for people (PKCE)."""

    run_dir: Path
    secure: bool = False
    public_base: str = "http://127.0.0.1:8480"
    oidc_client_id: str = "hub-staff"
    kafka: Settings | None = None
    """Where the dead-letter topics are read and replayed (the hub's settings)."""
    dlq_topics: tuple[str, ...] = ()
    """The dead-letter topics shown; empty: every topic's (``hub.plugins.all_topics``)."""


def _console_key(run_dir: Path) -> bytes:
    path = run_dir / "console-key"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text("utf-8").strip())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _yen(amount: int) -> str:
    return f"{amount:,}"


def _jst(at: datetime | None) -> str:
    if at is None:
        return "-"
    return at.astimezone(JST).strftime("%Y-%m-%d %H:%M")


def _violations(exc: HTTPException) -> list[RuleViolation]:
    detail = exc.detail
    found: list[RuleViolation] = []
    if isinstance(detail, dict):
        items = detail.get("violations") or ([detail] if "rule_id" in detail else [])
        for item in items:
            try:
                found.append(RuleViolation.model_validate(item))
            except ValidationError:
                continue
    return found


def _dates(filters: dict[str, Any]) -> dict[str, Any]:
    """The form's days as Asia/Tokyo midnights; the last day counts whole."""
    for name, extra in (("concluded_from", 0), ("concluded_to", 1)):
        value = filters.get(name)
        if isinstance(value, str) and len(value) == 10:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                continue  # the model names the field
            filters[name] = datetime.combine(day + timedelta(days=extra), time(), JST)
    return filters


class _Login(Exception):
    """No valid session: the page answers with the log-in page."""


def console_router(engine: Engine, identity: StaffIdentity, archive: ArchiveService,  # noqa: PLR0915 -- one router, its pages in order
                   config: ConsoleConfig, *, clock: Callable[[], datetime] = utc_now,
                   ) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    key = _console_key(config.run_dir)
    provider = httpx.Client(timeout=identity.oidc.settings.timeout_s if identity.oidc else 5.0)
    """The provider's log-in endpoints (the verifier fetches its keys on its own)."""

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        if asked in ("ja", "en"):
            return asked
        return "en" if request.cookies.get(LANG_COOKIE) == "en" else "ja"

    def csrf_for(secret: str) -> str:
        return hmac.new(key, b"csrf:" + secret.encode(), hashlib.sha256).hexdigest()[:40]

    def set_cookie(response: Response, name: str, value: str, *, max_age: int | None = None,
                   ) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True,
                            samesite="lax", secure=config.secure)

    def render(request: Request, template: str, who: Principal | None, *, status: int = 200,
               **context: Any) -> HTMLResponse:
        lang = lang_of(request)
        here = request.url.path
        other = "en" if lang == "ja" else "ja"
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        token = request.cookies.get(SESSION_COOKIE, "")
        body = _TEMPLATES.get_template(template).render(
            t=lambda k, **v: texts.word(k, lang, **v), lang=lang, who=who,
            roles=sorted(who.roles) if who else [], Role=Role,
            switch_url=here + "?" + urlencode({**query, "lang": other}),
            csrf=csrf_for(token) if token else "", status_label=status_label(lang),
            yen=_yen, jst=_jst, prefix=PREFIX, entities=entities_label(who, lang),
            **context)
        response = HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)
        if request.query_params.get("lang") in ("ja", "en"):
            set_cookie(response, LANG_COOKIE, lang, max_age=365 * 86400)
        return response

    def status_label(lang: str) -> Callable[[str], str]:
        def label(status: str) -> str:
            try:
                ja, en = texts.STATUS[ContractStatus(status)]
            except ValueError:
                return status
            return en if lang == "en" else ja
        return label

    def entities_label(who: Principal | None, lang: str) -> str:
        if who is None:
            return ""
        scope = who.entity_filter()
        return texts.word("every_entity", lang) if scope is None else "、".join(sorted(scope))

    def caller(request: Request) -> Principal:
        """The session's person (runs in a worker thread: a provider's token may fetch its
        keys); :class:`_Login` without a valid session."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise _Login
        try:
            return identity.principal(f"Bearer {token}")
        except HTTPException:
            raise _Login from None

    def to_login(request: Request) -> Response:
        back = request.url.path + ("?" + request.url.query if request.url.query else "")
        response = RedirectResponse(f"{PREFIX}/login?" + urlencode({"next": back}), 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def refusal(request: Request, who: Principal | None, exc: HTTPException) -> HTMLResponse:
        found = _violations(exc)
        return render(request, "error.html.j2", who, status=exc.status_code,
                      violations=found, plain="" if found else str(exc.detail))

    def checked_csrf(request: Request, form: Any) -> None:
        token = request.cookies.get(SESSION_COOKIE, "")
        given = str(form.get("csrf", ""))
        if not token or not hmac.compare_digest(given, csrf_for(token)):
            raise HTTPException(403, detail={"violations": [RuleViolation(
                rule_id="IAM-5", message_ja=texts.word("csrf", "ja"),
                message_en=texts.word("csrf", "en"),
                next_step_ja="画面を開き直して操作してください。",
                next_step_en="Open the page again and repeat the step.").model_dump()]})

    def safe_next(target: str | None) -> str:
        if target and target.startswith(PREFIX + "/") and "//" not in target:
            return target
        return f"{PREFIX}/dashboard"

    async def page(request: Request, build: Callable[[Principal], Response]) -> Response:
        """Resolve the caller, then ``build`` the page in a worker thread; a refusal
        becomes its page, a missing session the log-in page."""
        try:
            who = await run_in_threadpool(caller, request)
        except _Login:
            return to_login(request)
        try:
            return await run_in_threadpool(build, who)
        except HTTPException as exc:
            return refusal(request, who, exc)

    # -- log-in ------------------------------------------------------------------------

    @router.get("")
    def root() -> Response:
        return RedirectResponse(f"{PREFIX}/dashboard", 303)

    @router.get("/login")
    def login_page(request: Request, error: str = "") -> Response:
        nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
        response = render(
            request, "login.html.j2", None, status=401 if error else 200,
            login_csrf=csrf_for("login:" + nonce), local=identity.users is not None,
            oidc=identity.oidc is not None, next=safe_next(request.query_params.get("next")),
            error=error == "1")
        set_cookie(response, PRE_COOKIE, nonce, max_age=3600)
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(PRE_COOKIE, "")
        given = str(form.get("csrf", ""))
        if not nonce or not hmac.compare_digest(given, csrf_for("login:" + nonce)):
            return RedirectResponse(f"{PREFIX}/login", 303)
        users, local = identity.users, identity.local
        if users is None or local is None:
            return RedirectResponse(f"{PREFIX}/login", 303)
        who = await run_in_threadpool(users.authenticate, str(form.get("username", "")),
                                      str(form.get("password", "")))
        target = safe_next(str(form.get("next", "")))
        if who is None:
            return RedirectResponse(f"{PREFIX}/login?" + urlencode(
                {"error": "1", "next": target}), 303)
        response = RedirectResponse(target, 303)
        set_cookie(response, SESSION_COOKIE, local.issue(who), max_age=local.ttl_s)
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        log.info("console: %s logged in", who.who)
        return response

    @router.get("/login/oidc")
    async def login_oidc(request: Request) -> Response:
        oidc = identity.oidc
        if oidc is None:
            return RedirectResponse(f"{PREFIX}/login", 303)
        nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
        verifier = _b64url(hmac.new(key, b"pkce:" + nonce.encode(), hashlib.sha256).digest())
        found = await run_in_threadpool(
            provider.get, oidc.issuer + "/.well-known/openid-configuration")
        endpoint = str(found.json()["authorization_endpoint"])
        target = safe_next(request.query_params.get("next"))
        response = RedirectResponse(endpoint + "?" + urlencode({
            "client_id": config.oidc_client_id, "response_type": "code", "scope": "openid",
            "redirect_uri": config.public_base + f"{PREFIX}/oidc/callback",
            "state": csrf_for("state:" + nonce + target) + "." + target,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256"}), 303)
        set_cookie(response, PRE_COOKIE, nonce, max_age=3600)
        return response

    @router.get("/oidc/callback")
    async def oidc_callback(request: Request) -> Response:
        oidc, nonce = identity.oidc, request.cookies.get(PRE_COOKIE, "")
        mac, _, target = request.query_params.get("state", "").partition(".")
        code = request.query_params.get("code", "")
        if oidc is None or not nonce or not code or not hmac.compare_digest(
                mac, csrf_for("state:" + nonce + target)):
            return RedirectResponse(f"{PREFIX}/login?error=1", 303)
        verifier = _b64url(hmac.new(key, b"pkce:" + nonce.encode(), hashlib.sha256).digest())

        def exchange() -> str | None:
            try:
                found = provider.get(oidc.issuer + "/.well-known/openid-configuration")
                answer = provider.post(str(found.json()["token_endpoint"]), data={
                    "grant_type": "authorization_code", "client_id": config.oidc_client_id,
                    "code": code, "code_verifier": verifier,
                    "redirect_uri": config.public_base + f"{PREFIX}/oidc/callback"})
                answer.raise_for_status()
                token = str(answer.json()["access_token"])
                identity.principal(f"Bearer {token}")
            except (httpx.HTTPError, KeyError, ValueError, HTTPException) as exc:
                log.info("console: provider log-in refused: %s", type(exc).__name__)
                return None
            return token

        token = await run_in_threadpool(exchange)
        if token is None:
            return RedirectResponse(f"{PREFIX}/login?error=1", 303)
        response = RedirectResponse(safe_next(target), 303)
        set_cookie(response, SESSION_COOKIE, token, max_age=3600)
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        try:
            checked_csrf(request, form)
        except HTTPException as exc:
            return refusal(request, None, exc)
        response = RedirectResponse(f"{PREFIX}/login", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    # -- ダッシュボード -------------------------------------------------------------------

    @router.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        try:
            who = await run_in_threadpool(caller, request)
        except _Login:
            return to_login(request)
        now = clock()
        admin = Role.ADMIN in who.roles
        scope = who.entity_filter()

        def read() -> dict[str, Any]:
            with Session(engine) as db:
                out: dict[str, Any] = {
                    "registrations": views.registrations(db, scope, now),
                    "statuses": views.cases_by_status(db, scope)}
                if admin:
                    out["dead_stored"], out["dead_live"] = views.dead_letters(db)
                    out["lag"] = views.consumer_lag()
                return out

        data = await run_in_threadpool(read)
        if admin:
            data["connectors"] = await views.connectors(
                getattr(request.app.state, "connectors", None), now)
        return render(request, "dashboard.html.j2", who, admin=admin, now=now,
                      all_statuses=list(ContractStatus), **data)

    # -- 案件一覧 / 案件詳細 ----------------------------------------------------------------

    @router.get("/cases")
    async def cases(request: Request) -> Response:
        params = request.query_params
        raw = {k: params.get(k) or None for k in (
            "counterparty", "status", "amount_min", "amount_max", "concluded_from",
            "concluded_to", "after")}

        def build(who: Principal) -> Response:
            try:
                query = ContractQuery.model_validate(_dates({k: v for k, v in raw.items() if v}))
            except ValidationError as exc:
                return render(request, "cases.html.j2", who, status=422, form=raw,
                              found=None, problems=[
                                  f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                  for e in exc.errors()], statuses=list(ContractStatus))
            cap, scope, following = contract_list.COUNT_CAP, who.entity_filter(), None
            with Session(engine) as db:
                found = archive.search(who, request, db, query)
                total = contract_list.count_contracts(db, **query.model_dump(), cap=cap,
                                                      entities=scope)
                if len(found) == query.limit:  # a next page only when a case is left for it
                    cursor = contract_list.page_cursor(found[-1].updated_at, found[-1].case_id)
                    if contract_list.search_contracts(db, **{**query.model_dump(), "limit": 1,
                                                             "after": cursor}, entities=scope):
                        following = cursor
            kept = {k: v for k, v in raw.items() if v and k != "after"}
            return render(request, "cases.html.j2", who, form=raw, found=found, problems=[],
                          statuses=list(ContractStatus),
                          total=f"{cap:,}+" if total > cap else f"{total:,}",
                          first_href=f"{PREFIX}/cases?" + urlencode(kept) if raw["after"]
                          else None, next_href=f"{PREFIX}/cases?" + urlencode(
                              {**kept, "after": following}) if following else None)

        return await page(request, build)

    def case_page(request: Request, who: Principal, case_id: str, *,
                  validation: Any = None, status: int = 200) -> Response:
        with Session(engine) as db:
            state, role = archive.readable(who, request, "console.case", case_id, db)
            if state is None:
                archive.known(case_id, db)  # the 404 with CON-2's text
            assert state is not None
            steps = views.timeline(db, state)
            archive.write(who, request, "console.case", case_id, role=role,
                          entity=state.procuring_entity, read=db)
        can_agree = (Role.APPROVER in who.roles
                     and state.status is ContractStatus.CONTRACTOR_SIGNED)
        return render(request, "case.html.j2", who, status=status, case=state, steps=steps,
                      validation=validation, can_agree=can_agree,
                      accepted=request.query_params.get("accepted"))

    @router.get("/cases/{case_id}")
    async def case(case_id: str, request: Request) -> Response:
        return await page(request, lambda who: case_page(request, who, case_id))

    @router.post("/cases/{case_id}/validation")
    async def validation(case_id: str, request: Request) -> Response:
        form = await request.form()

        def build(who: Principal) -> Response:
            checked_csrf(request, form)
            with Session(engine) as db:
                report = archive.validation(who, request, case_id, db)
            return case_page(request, who, case_id, validation=report)

        return await page(request, build)

    @router.post("/cases/{case_id}/city-agreement")
    async def city_agreement(case_id: str, request: Request) -> Response:
        form = await request.form()

        def build(who: Principal) -> Response:
            checked_csrf(request, form)
            with Session(engine) as db:
                accepted = archive.city_agreement(who, request, case_id, db)
            return RedirectResponse(f"{PREFIX}/cases/{case_id}?" + urlencode(
                {"accepted": accepted.request_id}), 303)

        return await page(request, build)

    @router.get("/cases/{case_id}/certificate.pdf")
    async def certificate(case_id: str, request: Request) -> Response:
        def build(who: Principal) -> Response:
            with Session(engine) as db:
                cert = archive.certificate(who, request, case_id, db)
            return Response(certificate_pdf(cert), media_type="application/pdf", headers={
                "Content-Disposition": f'attachment; filename="{case_id}-certificate.pdf"'})

        return await page(request, build)

    @router.get("/cases/{case_id}/document.pdf")
    async def document(case_id: str, request: Request) -> Response:
        def build(who: Principal) -> Response:
            with Session(engine) as db:
                body = archive.document(who, request, case_id, db)
            return Response(body, media_type="application/pdf", headers={
                "Content-Disposition": f'attachment; filename="{case_id}.pdf"'})

        return await page(request, build)

    # -- 利用者登録 ------------------------------------------------------------------------

    def registrations_page(request: Request, who: Principal, *, done: str = "",
                           request_id: str = "") -> Response:
        scope = who.entity_filter()
        admin = Role.ADMIN in who.roles
        with Session(engine) as db:
            found = views.decisions(db, scope)
            queue = views.held(db, scope)
        archive.write(who, request, "console.registrations", "registrations",
                      role=sorted(who.roles)[0] if who.roles else "",
                      entity=scope_of(who), detail=f"{len(found)} decision(s)")
        params = request.query_params
        confirm = None
        if admin and params.get("step") in ("confirm", "reject"):
            confirm = next(({**q, "step": params["step"]} for q in queue
                            if q["id"] == params.get("held")), None)
        return render(request, "registrations.html.j2", who, active="registrations",
                      decisions=found, queue=queue, can_decide=admin, confirm=confirm,
                      done=done, request_id=request_id)

    @router.get("/registrations")
    async def registrations(request: Request) -> Response:
        return await page(request, lambda who: registrations_page(request, who))

    def held_step(step: Step) -> Callable[[str, Request], Any]:
        async def route(confirmation_id: str, request: Request) -> Response:
            form = await request.form()

            def build(who: Principal) -> Response:
                checked_csrf(request, form)
                request_id = decide_held(engine, archive, who, request,
                                         confirmation_id=confirmation_id, step=step)
                log.info("console: %s asked to %s held registration %s", who.who, step,
                         confirmation_id)
                return registrations_page(request, who, done=step, request_id=request_id)

            return await page(request, build)

        return route

    router.add_api_route("/registrations/held/{confirmation_id}/confirm", held_step("confirm"),
                         methods=["POST"])
    router.add_api_route("/registrations/held/{confirmation_id}/reject", held_step("reject"),
                         methods=["POST"])

    # -- デッドレター ----------------------------------------------------------------------

    def admin_only(who: Principal, request: Request, action: str,
                   target: str = "dead-letters") -> None:
        if Role.ADMIN not in who.roles:
            archive.write(who, request, action, target, entity=scope_of(who),
                          outcome="denied", detail="role")
            raise denied_role({Role.ADMIN})

    async def letters_of(who: Principal) -> list[DeadLetter]:
        """The dead letters of the caller's entities (every one for ``*``)."""
        if config.kafka is None:
            raise HTTPException(503, detail="this hub reads no dead-letter topics")
        if config.dlq_topics:
            topics = list(config.dlq_topics)
        else:
            from hub.plugins import all_topics

            topics = [t.dlq for t in all_topics()]
        found = await read_dead_letters(config.kafka, topics)
        return matching(found, who.entity_filter(), LetterFilter())

    async def admin_page(request: Request, action: str,
                         build: Callable[[Principal], Any], target: str = "dead-letters",
                         ) -> Response:
        try:
            who = await run_in_threadpool(caller, request)
        except _Login:
            return to_login(request)
        try:
            await run_in_threadpool(admin_only, who, request, action, target)
            answer: Response = await build(who)
        except HTTPException as exc:
            return refusal(request, who, exc)
        return answer

    def one(letters: list[DeadLetter], ref: str) -> DeadLetter:
        found = next((d for d in letters if d.ref == ref), None)
        if found is None:
            raise HTTPException(404, detail={"violations": [RuleViolation(
                rule_id="OPS-3", message_ja=f"デッドレター {ref} はありません（再送済みで"
                "保存期間を過ぎたか、所属機関のものではありません）。",
                message_en=f"No dead letter {ref} (replayed and past its retention, or not "
                "one of your entities').", next_step_ja="デッドレター一覧から選び直してください。",
                next_step_en="Choose it again from the dead-letter list.").model_dump()]})
        return found

    def letter_row(d: DeadLetter) -> dict[str, Any]:
        return {**d.summary(), "entity": letter_entity(d), "original_topic": d.original_topic}

    @router.get("/dead-letters")
    async def dead_letters(request: Request) -> Response:
        params = request.query_params
        form, wanted, problems = filter_of(params)

        async def build(who: Principal) -> Response:
            mine = await letters_of(who)
            shown = matching(mine, None, wanted)

            def replayed() -> dict[str, tuple[datetime, str]]:
                archive.write(who, request, "dlq.list", "dead-letters", role=Role.ADMIN.value,
                              entity=scope_of(who), detail=f"{len(shown)} letter(s)")
                with Session(engine) as db:
                    return views.replays(db, (d.ref for d in shown))

            done = await run_in_threadpool(replayed)
            return render(request, "deadletters.html.j2", who, status=422 if problems else 200,
                          active="dlq", form=form, replays=done,
                          letters=[letter_row(d) for d in shown],
                          choices=choices(mine), problems=problems, total=len(mine))

        return await admin_page(request, "dlq.list", build)

    @router.get("/dead-letters/letter")
    async def dead_letter(request: Request) -> Response:
        ref = request.query_params.get("ref", "")
        confirm = request.query_params.get("confirm") == "1"

        async def build(who: Principal) -> Response:
            letter = one(await letters_of(who), ref)
            await run_in_threadpool(archive.write, who, request, "dlq.show", ref,
                                    role=Role.ADMIN.value, entity=letter_entity(letter))
            return render(request, "deadletter.html.j2", who, active="dlq",
                          letter={**letter.details(), "entity": letter_entity(letter),
                                  "original_topic": letter.original_topic},
                          confirm=confirm, replayed=False)

        return await admin_page(request, "dlq.show", build)

    async def replayed_by(who: Principal, request: Request, letters: list[DeadLetter],
                          ) -> list[DeadLetter]:
        """Send ``letters`` back to their original topics with :func:`hub.dlq.replay`, as
        ``hub dlq replay`` does, each one's ``dlq.replay`` audit row written once it is
        back on its topic (the single replay's and the filtered set's one path)."""
        assert config.kafka is not None
        sent: list[DeadLetter] = []

        def record(letter: DeadLetter) -> None:
            sent.append(letter)
            archive.write(who, request, "dlq.replay", letter.ref, role=Role.ADMIN.value,
                          entity=letter_entity(letter), detail=letter.original_topic)
            log.info("console: %s replayed dead letter %s", who.who, letter.ref)

        await replay(config.kafka, letters, on_sent=record)
        return sent

    @router.post("/dead-letters/replay")
    async def dead_letter_replay(request: Request) -> Response:
        form = await request.form()
        ref = str(form.get("ref", ""))

        async def build(who: Principal) -> Response:
            checked_csrf(request, form)
            letter = one(await letters_of(who), ref)
            await replayed_by(who, request, [letter])
            return render(request, "deadletter.html.j2", who, active="dlq",
                          letter={**letter.details(), "entity": letter_entity(letter),
                                  "original_topic": letter.original_topic},
                          confirm=False, replayed=True)

        return await admin_page(request, "dlq.replay", build)

    def filter_of(source: Any) -> tuple[dict[str, str], LetterFilter, list[str]]:
        """The list's filter from a query string or a form, and what is wrong with it."""
        form = {k: str(source.get(k, "") or "") for k in FILTER_FIELDS}
        problems, since = [], None
        if form["since"]:
            try:
                since = date.fromisoformat(form["since"])
            except ValueError:
                problems.append(f"since: {form['since']!r} is not a date (YYYY-MM-DD)")
        return form, LetterFilter(topic=form["topic"], reason=form["reason"],
                                  rule=form["rule"], entity=form["entity"],
                                  since=since), problems

    async def pending_set(who: Principal, source: Any,
                          ) -> tuple[dict[str, str], list[DeadLetter], int]:
        """The filter, the letters it shows not replayed yet (oldest first, at most
        :data:`REPLAY_SET_MAX`) and how many it shows in all."""
        form, wanted, problems = filter_of(source)
        if problems:
            raise HTTPException(422, detail={"violations": [BAD_SET.model_dump()]})
        shown = matching(await letters_of(who), None, wanted)

        def not_replayed() -> list[DeadLetter]:
            with Session(engine) as db:
                done = views.replays(db, (d.ref for d in shown))
            return [d for d in reversed(shown) if d.ref not in done]

        return form, (await run_in_threadpool(not_replayed))[:REPLAY_SET_MAX], len(shown)

    @router.get("/dead-letters/replay-set")
    async def dead_letters_replay_set(request: Request) -> Response:
        async def build(who: Principal) -> Response:
            form, todo, shown = await pending_set(who, request.query_params)
            return render(request, "replayset.html.j2", who, active="dlq", form=form,
                          letters=[letter_row(d) for d in todo], shown=shown,
                          limit=REPLAY_SET_MAX, done=None)

        return await admin_page(request, "dlq.replay", build)

    @router.post("/dead-letters/replay-set")
    async def dead_letters_replay_set_do(request: Request) -> Response:
        form_data = await request.form()

        async def build(who: Principal) -> Response:
            checked_csrf(request, form_data)
            form, todo, shown = await pending_set(who, form_data)
            if str(len(todo)) != str(form_data.get("n", "")):
                # The set changed since it was confirmed: confirm the new one first.
                return render(request, "replayset.html.j2", who, active="dlq", form=form,
                              letters=[letter_row(d) for d in todo], shown=shown,
                              limit=REPLAY_SET_MAX, done=None, changed=True)
            sent = await replayed_by(who, request, todo)
            return render(request, "replayset.html.j2", who, active="dlq", form=form,
                          letters=[letter_row(d) for d in sent], shown=shown,
                          limit=REPLAY_SET_MAX, done=len(sent))

        return await admin_page(request, "dlq.replay", build)

    # -- コネクタ --------------------------------------------------------------------------

    def control_of(request: Request) -> ConnectorControl | None:
        """The hub's connector control (``hub.control.mount``), ``None`` in a process
        without connectors."""
        found = getattr(request.app.state, "control", None)
        return found if isinstance(found, ConnectorControl) else None

    async def connectors_page(request: Request, who: Principal, *, confirm: str = "",
                              name: str = "", done: str = "") -> Response:
        control = control_of(request)
        rows = ([await control.status(c) for _, c in sorted(control.connectors.items())]
                if control is not None else [])
        if confirm:
            if control is None:
                raise HTTPException(404, detail={"violations": [UNKNOWN.model_dump()]})
            control.get(name)  # OPS-1 for a name that does not run here
        await run_in_threadpool(archive.write, who, request, "connectors.list", "connectors",
                                role=Role.ADMIN.value, entity=scope_of(who),
                                detail=f"{len(rows)} connector(s)")
        return render(request, "connectors.html.j2", who, active="connectors",
                      connectors=rows, confirm=confirm, name=name, done=done)

    @router.get("/connectors")
    async def connectors(request: Request) -> Response:
        params = request.query_params
        confirm = params.get("confirm", "")
        if confirm not in ("pause", "resume"):
            confirm = ""

        async def build(who: Principal) -> Response:
            return await connectors_page(request, who, confirm=confirm,
                                         name=params.get("name", ""))

        return await admin_page(request, "connectors.list", build, "connectors")

    def steer(step: str) -> Callable[[str, Request], Any]:
        async def route(name: str, request: Request) -> Response:
            form = await request.form()

            async def build(who: Principal) -> Response:
                checked_csrf(request, form)
                control = control_of(request)
                if control is None:
                    raise HTTPException(404, detail={"violations": [UNKNOWN.model_dump()]})
                request.state.staff = who  # the control API's audit row names the person
                async with control.audited(request, f"connectors.{step}", name):
                    if step == "pause":
                        await control.pause(name)
                    else:
                        control.resume(name)
                log.info("console: %s asked connector %s to %s", who.who, name, step)
                return await connectors_page(request, who, name=name, done=step)

            return await admin_page(request, f"connectors.{step}", build, name[:300])

        return route

    router.add_api_route("/connectors/{name}/pause", steer("pause"), methods=["POST"])
    router.add_api_route("/connectors/{name}/resume", steer("resume"), methods=["POST"])

    return router
