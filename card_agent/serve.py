"""``card-agent serve``: the agent as a localhost service for the hub's pages.

The contractor's browser, on a page of the hub, calls this service on
``http://127.0.0.1:8489`` (the 電子入札補助アプリ model). What holds:

- It listens on 127.0.0.1 only. Every request's ``Host`` must be ``127.0.0.1:PORT`` or
  ``localhost:PORT``: a DNS-rebinding page (``Host: evil.example:8489``) is refused
  (AGT-2).
- The API answers only an ``Origin`` that is a configured hub, with CORS naming that
  origin (no wildcard); another origin's preflight and request are refused (AGT-1).
- A page first pairs (``POST /pair``) and gets a per-session token bound to its origin;
  every other API call needs it (AGT-3).
- The PIN is typed only in the agent's own page (``/op/<id>``, served on the agent's
  origin), never in the hub's page; the retries left are shown before each attempt, a PIN
  is never retried automatically, a locked card gets a page saying what to do (PIN-1).
- Before signing, that page shows what the agent read from the PDF itself (title,
  parties, amounts in the text, page count, a picture of page 1) and the SHA-256 signed;
  the hub's description is shown apart, marked as the hub's.

API (JSON, for the paired page): ``GET /status`` (readers, card, PIN retries),
``GET /certificate``, ``POST /operations`` (login, sign, register, change, renew),
``GET /operations/<id>`` (its outcome). The page opens ``/op/<id>`` for the person.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from card_agent.card import CardBackend, CardSession
from card_agent.client import DocumentMismatchError, GatewayClient, GatewayRefusedError
from card_agent.document import DocumentView, read_document
from card_agent.errors import CardError, CardLockedError, NoCardError, WrongPinError
from card_agent.signing import sign_pdf
from card_agent.tsa import AgentTimeStamper, TsaError, TsaInMaintenance
from card_agent.wire import RuleViolation

__all__ = ["DEFAULT_PORT", "AgentService", "origin_of"]

DEFAULT_PORT = 8489
"""The agent's fixed port on 127.0.0.1 (the hub's pages call it there)."""

TOKEN_TTL_S = 8 * 3600
OPERATION_TTL_S = 15 * 60
_MAX_BODY = 64 * 1024
KINDS = ("login", "sign", "register", "change", "renew")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as a browser sends it in ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _violation(rule_id: str, ja: str, en: str, next_ja: str, next_en: str) -> RuleViolation:
    return RuleViolation(rule_id=rule_id, message_ja=ja, message_en=en,
                         next_step_ja=next_ja, next_step_en=next_en)


FOREIGN_ORIGIN = _violation(
    "AGT-1", "このページからはICカードエージェントを利用できません。",
    "This page's origin is not a hub this agent serves.",
    "発注機関の電子入札・電子契約システムのページから操作してください。",
    "Use the card agent from the procuring entity's hub pages.")
WRONG_HOST = _violation(
    "AGT-2", "ICカードエージェントへの宛先が正しくありません。",
    "The request was not addressed to this PC's card agent (Host).",
    "ブラウザで 127.0.0.1 のエージェントを直接指定してください。",
    "Address the agent as 127.0.0.1 (a rebinding name is refused).")
NOT_PAIRED = _violation(
    "AGT-3", "ICカードエージェントとの接続(ペアリング)が確認できません。",
    "This page is not paired with the card agent (missing or expired token).",
    "ページを再読み込みしてからもう一度操作してください。",
    "Reload the page, which pairs it again, and retry.")


class OperationStatus(StrEnum):
    """Where one card operation stands (``GET /operations/<id>``'s ``status``)."""

    WAITING = "waiting"
    """Asked for; the person has not completed it yet."""
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class Operation:
    """One card operation a paired page asked for; the person completes it at /op/<id>."""

    id: str
    kind: str
    origin: str
    params: dict[str, Any]
    created: float
    status: OperationStatus = OperationStatus.WAITING
    step: int = 0  # renew: 0 old card, 1 new card
    result: dict[str, Any] = field(default_factory=dict)
    violations: list[RuleViolation] = field(default_factory=list)
    job: dict[str, Any] | None = None
    document: bytes | None = None
    view: DocumentView | None = None
    proofs: list[dict[str, Any]] = field(default_factory=list)
    old_cert: x509.Certificate | None = None
    message: RuleViolation | None = None


class AgentService:
    """The service's state: paired pages, operations, the card, the hub."""

    def __init__(self, *, backend: CardBackend, hub: httpx.Client,
                 origins: Sequence[str], chain: Sequence[x509.Certificate] = (),
                 tsa: AgentTimeStamper | None = None, reader: str | None = None,
                 port: int = DEFAULT_PORT, now: Callable[[], float] = time.monotonic,
                 where: Mapping[str, str] | None = None) -> None:
        self.backend, self.hub, self.chain, self.tsa = backend, hub, tuple(chain), tsa
        self.where = dict(where or {})
        """The entity, system and domain a login is for, unless the page names them."""
        self.reader = reader
        self.origins = frozenset(origin_of(o) for o in origins)
        if not self.origins or "*" in "".join(self.origins) or "null" in self.origins:
            raise ValueError("the agent serves named hub origins only (no wildcard, no null)")
        self.port = port
        self.now = now
        self._tokens: dict[str, tuple[str, float]] = {}  # sha256(token) -> origin, expiry
        self._ops: dict[str, Operation] = {}
        self._lock = threading.Lock()
        self._card = threading.Lock()  # one card operation at a time
        self._server: ThreadingHTTPServer | None = None

    # -- the HTTP server --------------------------------------------------------------
    def start(self) -> int:
        """Listen on 127.0.0.1 (a background thread); returns the port."""
        service = self

        class Handler(_Handler):
            agent = service

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="card-agent-serve",
                         daemon=True).start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def self_origins(self) -> frozenset[str]:
        return frozenset({f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"})

    def host_ok(self, host: str | None) -> bool:
        return (host or "").lower() in {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    # -- pairing ------------------------------------------------------------------------
    def pair(self, origin: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self.now()
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[hashlib.sha256(token.encode()).hexdigest()] = (origin,
                                                                       now + TOKEN_TTL_S)
        return {"token": token, "expires_in": TOKEN_TTL_S}

    def paired(self, origin: str, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        key = hashlib.sha256(authorization[7:].strip().encode()).hexdigest()
        with self._lock:
            found = self._tokens.get(key)
        return found is not None and found[0] == origin and found[1] > self.now()

    # -- card and status -----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        readers = list(self.backend.readers())
        out: dict[str, Any] = {"readers": readers, "card": None, "pin": None}
        try:
            with self._card, self.backend.open(self.reader) as card:
                cert = card.certificate()
                pin = card.pin_status()
        except NoCardError:
            return out
        except CardError as exc:
            out["error"] = exc.violation.model_dump()
            return out
        out["card"] = _cert_summary(cert)
        out["pin"] = {"retries_left": pin.retries_left, "locked": pin.locked}
        return out

    def certificate(self) -> dict[str, Any]:
        with self._card, self.backend.open(self.reader) as card:
            cert = card.certificate()
        return {**_cert_summary(cert),
                "der": base64.b64encode(cert.public_bytes(Encoding.DER)).decode()}

    # -- operations ---------------------------------------------------------------------
    def new_operation(self, origin: str, body: dict[str, Any]) -> Operation:
        kind = body.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        op = Operation(id=secrets.token_urlsafe(24), kind=kind, origin=origin, params=params,
                       created=self.now())
        if kind == "sign":
            job_id, hub_token = str(params.get("job_id", "")), params.get("hub_session")
            if not job_id or not isinstance(hub_token, str):
                raise ValueError("sign needs params.job_id and params.hub_session")
            gateway = self._gateway(hub_token)
            job = gateway.job(job_id)  # GatewayRefusedError: the hub's rules
            document = gateway.document(job)  # DocumentMismatchError: not the job's (AGT-4)
            op.job, op.document, op.view = job, document, read_document(document)
        with self._lock:
            now = self.now()
            self._ops = {k: v for k, v in self._ops.items()
                         if now - v.created < OPERATION_TTL_S}
            self._ops[op.id] = op
        return op

    def operation(self, op_id: str) -> Operation | None:
        with self._lock:
            op = self._ops.get(op_id)
        if op is None or self.now() - op.created >= OPERATION_TTL_S:
            return None
        return op

    def _gateway(self, hub_token: str | None = None) -> GatewayClient:
        gateway = GatewayClient(self.hub, self.chain)
        gateway.token = hub_token
        return gateway

    def cancel(self, op: Operation) -> None:
        if op.status == OperationStatus.WAITING:
            op.status = OperationStatus.CANCELLED

    def present_pin(self, op: Operation, pin: str) -> None:
        """One attempt with ``pin`` for ``op`` (PIN-1: once; the person decides to retry).

        The PIN goes to the card and nowhere else; it is never kept or logged.
        """
        if op.status != OperationStatus.WAITING:
            return
        op.message = None
        with self._card:
            card = self.backend.open(self.reader)
            try:
                state = card.pin_status()
                if state.locked:
                    raise CardLockedError()
                card.verify_pin(pin)
                self._complete(op, card)
            except CardLockedError as exc:
                op.status, op.violations = OperationStatus.FAILED, [exc.violation]
            except CardError as exc:
                # A wrong PIN or a card pulled out: the page says so; the person decides.
                op.message = exc.violation
                if not isinstance(exc, _RETRYABLE):
                    op.status, op.violations = OperationStatus.FAILED, [exc.violation]
                elif _locked_now(card):
                    op.status, op.violations = OperationStatus.FAILED, [CardLockedError().violation]
            except GatewayRefusedError as exc:
                op.status, op.violations = OperationStatus.FAILED, list(exc.violations)
            except TsaInMaintenance as exc:
                op.status = OperationStatus.FAILED
                op.violations = [_violation(
                    "WIN-3",
                    f"タイムスタンプ局がメンテナンス中です({exc.until:%Y-%m-%d %H:%M} UTC まで)。",
                    f"The TSA is in maintenance until {exc.until.isoformat()}.",
                    "終了後にもう一度署名してください。署名依頼はそのまま残ります。",
                    "Sign again afterwards; the job stays pending.")]
            except (TsaError, httpx.HTTPError) as exc:
                op.status = OperationStatus.FAILED
                op.violations = [_violation(
                    "PIN-2",
                    "ハブまたはタイムスタンプ局に接続できませんでした。署名は送信されていません。",
                    f"Could not reach the hub or the TSA ({type(exc).__name__}); nothing "
                    "was sent.", "しばらくしてからやり直してください。", "Try again later.")]
            finally:
                card.close()

    def _complete(self, op: Operation, card: CardSession) -> None:
        gateway = self._gateway(op.params.get("hub_session")
                                if isinstance(op.params.get("hub_session"), str) else None)
        fields = {k: v for k, v in op.params.items() if k != "hub_session"}
        if op.kind == "login":
            named = {k: str(op.params[k]) for k in ("procuring_entity", "system", "domain")
                     if op.params.get(k)}
            session = gateway.login(card, {**self.where, **named})
            op.result = {k: session[k] for k in ("token", "expires_at", "user_id",
                                                  "company_id", "network")}
        elif op.kind == "register":
            op.result = {"request_id": gateway.register(card, fields)}
        elif op.kind == "change":
            op.result = {"request_id": gateway.change(card, fields)}
        elif op.kind == "renew":
            cert = card.certificate()
            if op.step == 0:
                op.old_cert = cert
                op.proofs = [gateway.prove(card)]
                op.step = 1
                return  # still waiting: the new card next (RNW-6)
            if cert == op.old_cert:
                op.message = _violation(
                    "RNW-6", "差し込まれているのは旧ICカードです。",
                    "This is still the old card.", "新しいICカードに差し替えてください。",
                    "Insert the NEW card.")
                return
            op.proofs.append(gateway.prove(card))
            op.result = {"request_id": gateway.renew(op.proofs[0], op.proofs[1], fields)}
        elif op.kind == "sign":
            if self.tsa is None or op.document is None or op.job is None:
                raise TsaError("signing needs the TSA (--tsa-url)")
            self.tsa.check_open(_utcnow())
            signed = sign_pdf(op.document, card, self.tsa, chain=self.chain,
                              reason=f"署名依頼 {op.job['id']}")
            op.result = gateway.submit_signed(op.job["id"], signed)
        op.status = OperationStatus.DONE

    def public(self, op: Operation) -> dict[str, Any]:
        """What the paired page learns of an operation."""
        out: dict[str, Any] = {"id": op.id, "kind": op.kind, "status": op.status,
                               "step": op.step,
                               "violations": [v.model_dump() for v in op.violations]}
        if op.status == OperationStatus.DONE:
            out["result"] = op.result
        return out


_RETRYABLE = (WrongPinError,)
"""After these the person may try again (on the same page); the others end it."""


def _locked_now(card: CardSession) -> bool:
    try:
        return card.pin_status().locked
    except CardError:
        return False


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _cert_summary(cert: x509.Certificate) -> dict[str, Any]:
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": str(cert.serial_number),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat()}


class _Handler(BaseHTTPRequestHandler):
    agent: AgentService
    server_version = "card-agent"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: request lines would be noise on the contractor's console."""

    # -- answers ----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, origin: str | None = None) -> None:
        headers = {"Vary": "Origin"}
        if origin:
            headers["Access-Control-Allow-Origin"] = origin
        self._send(status, json.dumps(data, ensure_ascii=False).encode(),
                   "application/json; charset=utf-8", headers)

    def _refuse(self, status: int, violation: RuleViolation, origin: str | None = None) -> None:
        self._json(status, {"detail": {"violations": [violation.model_dump()]}}, origin)

    def _page(self, status: int, body: str) -> None:
        self._send(status, _layout(body).encode(), "text/html; charset=utf-8", {
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                                       "style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'",
            "X-Frame-Options": "DENY"})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request too large")
        return self.rfile.read(length) if length else b""

    # -- gates --------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        if self.agent.host_ok(self.headers.get("Host")):
            return True
        self._refuse(HTTPStatus.MISDIRECTED_REQUEST, WRONG_HOST)
        return False

    def _api_origin(self) -> str | None:
        """The request's hub origin, or None after refusing it (AGT-1)."""
        origin = (self.headers.get("Origin") or "").lower()
        if origin in self.agent.origins:
            return origin
        self._refuse(HTTPStatus.FORBIDDEN, FOREIGN_ORIGIN)
        return None

    # -- methods ------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        if not self._host_ok():
            return
        origin = self._api_origin()
        if origin is None:
            return
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                   "Access-Control-Allow-Methods": "GET, POST",
                   "Access-Control-Allow-Headers": "Authorization, Content-Type",
                   "Access-Control-Max-Age": "600"}
        if self.headers.get("Access-Control-Request-Private-Network") == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", headers)

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path.startswith("/op/"):
            self._op_page(path)
            return
        if path == "/":
            self._page(200, "<h1>ICカードエージェント</h1><p>動作中です。 / The card agent is "
                            "running.</p>")
            return
        origin = self._paired_origin()
        if origin is None:
            return
        try:
            if path == "/status":
                self._json(200, self.agent.status(), origin)
            elif path == "/certificate":
                self._json(200, self.agent.certificate(), origin)
            elif path.startswith("/operations/"):
                op = self.agent.operation(path.removeprefix("/operations/"))
                if op is None or op.origin != origin:
                    self._json(404, {"detail": "no such operation"}, origin)
                else:
                    self._json(200, self.agent.public(op), origin)
            else:
                self._json(404, {"detail": "not found"}, origin)
        except CardError as exc:
            self._refuse(409, exc.violation, origin)

    def _paired_origin(self) -> str | None:
        origin = self._api_origin()
        if origin is None:
            return None
        if not self.agent.paired(origin, self.headers.get("Authorization")):
            self._refuse(HTTPStatus.UNAUTHORIZED, NOT_PAIRED, origin)
            return None
        return origin

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        try:
            body = self._body()
        except ValueError:
            self._json(413, {"detail": "request too large"})
            return
        if path.startswith("/op/"):
            self._op_post(path, body)
            return
        if path == "/pair":
            origin = self._api_origin()
            if origin is not None:
                self._json(200, self.agent.pair(origin), origin)
            return
        origin = self._paired_origin()
        if origin is None:
            return
        if path != "/operations":
            self._json(404, {"detail": "not found"}, origin)
            return
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("a JSON object is expected")
            op = self.agent.new_operation(origin, request)
        except GatewayRefusedError as exc:
            self._json(exc.status, {"detail": {"violations": [
                v.model_dump() for v in exc.violations]}}, origin)
            return
        except DocumentMismatchError as exc:
            self._refuse(HTTPStatus.BAD_GATEWAY, exc.violation, origin)
            return
        except (ValueError, KeyError) as exc:
            self._json(400, {"detail": str(exc)}, origin)
            return
        except httpx.HTTPError as exc:
            self._json(502, {"detail": f"cannot reach the hub: {type(exc).__name__}"}, origin)
            return
        self._json(201, {**self.agent.public(op),
                         "url": f"http://127.0.0.1:{self.agent.port}/op/{op.id}"}, origin)

    # -- the agent's own pages -----------------------------------------------------------
    def _op(self, path: str) -> tuple[Operation | None, str]:
        rest = path.removeprefix("/op/").split("/", 1)
        return self.agent.operation(rest[0]), (rest[1] if len(rest) > 1 else "")

    def _op_page(self, path: str) -> None:
        op, sub = self._op(path)
        if op is None:
            self._page(404, "<h1>この操作は見つかりません</h1><p>期限切れか、完了しています。"
                            "ハブのページからやり直してください。 / No such operation: it "
                            "expired or was completed. Start again from the hub's page.</p>")
            return
        if sub == "preview.png" and op.view is not None:
            self._send(200, op.view.preview_png, "image/png")
            return
        self._page(200, _op_html(self.agent, op))

    def _op_post(self, path: str, body: bytes) -> None:
        # Only the agent's own page posts here (a form on its origin).
        if (self.headers.get("Origin") or "").lower() not in self.agent.self_origins:
            self._refuse(HTTPStatus.FORBIDDEN, FOREIGN_ORIGIN)
            return
        op, sub = self._op(path)
        if op is None:
            self._op_page(path)
            return
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if sub == "cancel":
            self.agent.cancel(op)
        elif sub == "pin":
            pin = (form.get("pin") or [""])[0]
            if pin:
                self.agent.present_pin(op, pin)
            del pin
        self._page(200, _op_html(self.agent, op))


# -- HTML ----------------------------------------------------------------------------------
_TITLES = {"login": "ICカードでログイン", "sign": "電子署名", "register": "利用者登録",
           "change": "利用者変更", "renew": "ICカード更新"}


def _layout(body: str) -> str:
    return ("<!doctype html><html lang=ja><head><meta charset=utf-8>"
            "<title>ICカードエージェント</title><style>body{font-family:sans-serif;"
            "max-width:46em;margin:2em auto;line-height:1.6}.v{background:#fee;padding:.5em;"
            "border:1px solid #c00}.ok{background:#efe;padding:.5em;border:1px solid #080}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .5em;"
            "text-align:left}.hub{color:#555}</style></head><body>"
            f"<p><b>ICカードエージェント</b>(このPCで動作しています)</p>{body}</body></html>")


def _e(text: object) -> str:
    return html.escape(str(text))


def _v_html(v: RuleViolation) -> str:
    return (f"<div class=v id=violation><b>[{_e(v.rule_id)}]</b> {_e(v.message_ja)}<br>"
            f"{_e(v.message_en)}<br>→ {_e(v.next_step_ja)} / {_e(v.next_step_en)}</div>")


def _op_html(agent: AgentService, op: Operation) -> str:
    title = _TITLES[op.kind]
    out = [f"<h1>{_e(title)}</h1>"]
    if op.status == OperationStatus.DONE:
        out.append("<div class=ok id=done>完了しました。このウィンドウを閉じて、"
                   "ハブのページに戻って"
                   "ください。 / Done: close this window and return to the hub's page.</div>")
        return "".join(out)
    if op.status == OperationStatus.CANCELLED:
        out.append("<p id=cancelled>取り消しました。署名・送信は行っていません。 / Cancelled; "
                   "nothing was signed or sent.</p>")
        return "".join(out)
    if op.status == OperationStatus.FAILED:
        out.extend(_v_html(v) for v in op.violations)
        out.append("<p>このウィンドウを閉じてください。 / Close this window.</p>")
        return "".join(out)
    if op.message is not None:
        out.append(_v_html(op.message))
    if op.view is not None and op.job is not None:
        out.append(_document_html(op))
    if op.kind == "renew":
        out.append("<p id=step>" + ("① 旧ICカードを差し込み、旧カードのPINを入力してください。 / "
                                     "Insert the OLD card." if op.step == 0 else
                                     "② 旧カードを抜き、新しいICカードを差し込んで、新カードのPINを"
                                     "入力してください。 / Insert the NEW card.") + "</p>")
        if op.step == 1:
            out.append(f"<p><a id=reload href=/op/{_e(op.id)}>差し替えました(表示を更新) / "
                       "I changed the card</a></p>")
    status = agent.status()
    card, pin = status.get("card"), status.get("pin")
    if card is None:
        out.append("<div class=v id=nocard>ICカードが見つかりません。カードリーダーにICカードを"
                   "差し込んでから、このページを再読み込みしてください。 / "
                   "No IC card: insert it and "
                   "reload this page.</div>")
        return "".join(out)
    out.append(f"<p>ICカード: {_e(card['subject'])}(serial {_e(card['serial'])})</p>")
    if pin and pin["locked"]:
        op.status, op.violations = OperationStatus.FAILED, [CardLockedError().violation]
        out.append(_v_html(op.violations[0]))
        return "".join(out)
    left = pin["retries_left"] if pin else None
    left_text = "" if left is None else f"残り{left}回 / {left} tries left"
    action = "署名する / Sign" if op.kind == "sign" else "実行 / Go"
    out.append(
        f"<form method=post action=/op/{_e(op.id)}/pin>"
        f"<p>PINの入力(<span id=retries>{_e(left_text)}</span>)"
        "。PINはこのPCのICカードにだけ送られます。</p>"
        "<input type=password name=pin id=pin autocomplete=off inputmode=numeric required> "
        f"<button id=submit>{_e(action)}</button></form>"
        f"<form method=post action=/op/{_e(op.id)}/cancel><button id=cancel>取消 / Cancel"
        "</button></form>")
    return "".join(out)


def _document_html(op: Operation) -> str:
    view, job = op.view, op.job
    assert view is not None
    assert job is not None
    amounts = "、".join(f"{a:,} 円" for a in view.amounts_yen) or "(本文に金額が見つかりません)"
    hub_amount = int(job.get("amount_yen", 0))
    warn = ""
    if view.amounts_yen and hub_amount not in view.amounts_yen:
        warn = (f"<div class=v id=mismatch>ハブの説明の金額({hub_amount:,} 円)は"
                "文書に書かれた金額と"
                "異なります。署名するのは文書の内容です。 / The hub's description differs from the "
                "document; what you sign is the document.</div>")
    return (
        "<h2>署名する文書(エージェントがPDFから読み取った内容)</h2><table>"
        f"<tr><th>件名 / title</th><td id=doc-title>{_e(view.title)}</td></tr>"
        f"<tr><th>当事者 / parties</th><td id=doc-parties>{_e('、'.join(view.parties))}</td></tr>"
        f"<tr><th>金額 / amount</th><td id=doc-amount>{_e(amounts)}</td></tr>"
        f"<tr><th>ページ数 / pages</th><td id=doc-pages>{view.pages}</td></tr>"
        f"<tr><th>SHA-256(署名対象)</th><td id=doc-sha256><code>{_e(view.sha256)}</code></td>"
        "</tr></table>"
        f"<p><img id=preview alt='1ページ目' width=600 src=/op/{_e(op.id)}/preview.png></p>"
        f"{warn}<p class=hub>参考: ハブの説明 / the hub's description: "
        f"{_e(job.get('subject', ''))}、{hub_amount:,} 円</p>")
