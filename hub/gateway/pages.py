"""The contractor's pages on the hub: 利用者登録, 利用者変更, ICカード更新 and 署名依頼.

Server-rendered (Jinja2), in Japanese. A form is checked here, field by field, with the
gateway's own request models (``hub.gateway.api``), and every message names its rule
(REG-7 ...). Once the fields are valid, the page's script hands them to the card agent on
the contractor's PC (``card-agent serve``, on 127.0.0.1): the agent asks for the PIN in
its own window, makes the card's proof and submits to the gateway's API, whose service
functions do the rest. The pages themselves never write the database, never see a PIN,
and never sign.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from hub.gateway.api import ChangeIn, RegistrationIn, RenewalIn

__all__ = ["DEFAULT_AGENT_URL", "build_pages_router"]

DEFAULT_AGENT_URL = "http://127.0.0.1:8489"
"""Where ``card-agent serve`` listens on the contractor's PC (its fixed port)."""

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(("j2", "html")))

_DUMMY_PROOF = {"challenge_id": "-", "certificate": "-", "signature": "-"}
"""Stands in for the card's proof while only the typed fields are checked."""

CONTACT_FIELDS = (
    ("contact_name", "連絡先名称(部署名等)", "text"), ("postal_code", "郵便番号", "text"),
    ("address", "住所", "text"), ("person_name", "氏名", "text"), ("phone", "電話番号", "tel"),
    ("fax", "FAX番号", "tel"), ("email", "E-Mail", "email"),
    ("email_confirmation", "E-Mail(確認のため再入力)", "email"),
)
CONTACTS = (("representative_contact", "代表窓口情報"),
            ("card_department_contact", "ICカード利用部署情報"))


@dataclass(frozen=True)
class Form:
    """One of the three forms: the agent's operation, title, the gateway's model of the
    body, the proofs the card adds, the typed fields, and whether contacts are asked."""

    kind: str
    title: str
    model: type[BaseModel]
    proofs: tuple[str, ...]
    fields: tuple[tuple[str, str, str], ...]
    contacts: bool


_WHERE = (("procuring_entity", "調達機関コード", "text"),
          ("system", "システム(e-bid / e-contract)", "system"),
          ("domain", "工事・物品(works / goods)", "domain"))
FORMS = {
    "register": Form("register", "利用者登録", RegistrationIn, ("proof",), (
        *_WHERE, ("user_id", "利用者ID(業者番号)", "text"),
        ("trade_name", "商号又は名称", "text"), ("password", "パスワード", "password"),
        ("department_name", "部署名", "text")), contacts=True),
    "change": Form("change", "利用者変更", ChangeIn, ("proof",), (
        *_WHERE, ("department_name", "部署名", "text")), contacts=True),
    "renew": Form("renew", "ICカード更新", RenewalIn, ("old_proof", "new_proof"), _WHERE,
                  contacts=False),
}


def _rule_for(field: str) -> str:
    return "REG-3" if field in ("trade_name", "user_id", "password") else "REG-7"


def parse_form(form: Form, data: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed fields as the gateway's body (without proofs), and per-field messages."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, _, _ in form.fields:
        value = data.get(name, "").strip()
        if value:
            body[name] = value
    if form.contacts:
        for prefix, label in CONTACTS:
            contact = {f: data.get(f"{prefix}.{f}", "").strip() for f, _, _ in CONTACT_FIELDS}
            contact = {k: v for k, v in contact.items() if v}
            if not contact:
                continue
            body[prefix] = contact
            if contact.get("email") != contact.get("email_confirmation"):
                errors[f"{prefix}.email_confirmation"] = (
                    f"[REG-7] {label}のE-Mailが確認用の入力と一致しません。同じアドレスを2回"
                    "入力してください。 / The two e-mail addresses differ.")
    if form.kind == "register" and "card_department_contact" not in body:
        errors["card_department_contact.contact_name"] = (
            "[REG-7] ICカード利用部署情報は必須です。 / The card department's contact is "
            "required.")
    try:
        form.model.model_validate({**body, **dict.fromkeys(form.proofs, _DUMMY_PROOF)})
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if field.split(".")[0] in form.proofs:
                continue
            errors.setdefault(field, f"[{_rule_for(field.split('.')[0])}] 入力内容が正しく"
                              f"ありません({err['msg']})。文字数・半角/全角・形式を確認して"
                              "ください。 / Not valid: check the length and format.")
    return body, errors


def _render(name: str, **context: Any) -> HTMLResponse:
    # no-store: the confirmation step holds the typed fields (the password among them)
    # for the agent; no cache keeps them.
    return HTMLResponse(_TEMPLATES.get_template(name).render(**context),
                        headers={"Cache-Control": "no-store"})


def build_pages_router(agent_url: str = DEFAULT_AGENT_URL) -> APIRouter:
    """The contractor's pages under ``/contractor``; ``agent_url``: the local agent."""
    router = APIRouter(prefix="/contractor", include_in_schema=False)
    common = {"agent_url": agent_url, "contacts": CONTACTS, "contact_fields": CONTACT_FIELDS}

    @router.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return _render("index.html.j2", forms=FORMS, **common)

    @router.get("/agent.js")
    def script() -> Response:
        text = (Path(__file__).parent / "templates" / "agent.js").read_text(encoding="utf-8")
        return Response(text, media_type="text/javascript; charset=utf-8")

    @router.get("/jobs", response_class=HTMLResponse)
    def jobs() -> HTMLResponse:
        return _render("jobs.html.j2", **common)

    def form_page(kind: str) -> Any:
        form = FORMS[kind]

        def show() -> HTMLResponse:
            return _render("form.html.j2", form=form, values={}, errors={}, **common)

        async def check(request: Request) -> HTMLResponse:
            raw = await request.form()
            data = {k: v for k, v in raw.items() if isinstance(v, str)}
            body, errors = parse_form(form, data)
            if errors:
                page = _render("form.html.j2", form=form, values=data, errors=errors, **common)
                page.status_code = 422
                return page
            return _render("card_step.html.j2", form=form,
                           params=json.dumps(body, ensure_ascii=False).replace("<", "\\u003c"),
                           **common)

        router.add_api_route(f"/{kind}", show, methods=["GET"], response_class=HTMLResponse)
        router.add_api_route(f"/{kind}", check, methods=["POST"], response_class=HTMLResponse)

    for kind in FORMS:
        form_page(kind)
    return router


