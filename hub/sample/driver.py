"""Plays every person and outside system of one procurement case against a running hub.

The hub is reached only where a real party would reach it:

- the city's 資格審査情報 CSV import (REG-3), on the hub's database, as ``hub
  qualifications import`` does;
- the contractor through the card agent (:mod:`card_agent.flows`) and its IC card:
  利用者登録 at the gateway (REG-1 … REG-10), agreement through the review link with the
  one-time code, both read from the mails the SMTP peer received (CON-3),
  the PAdES B-T signature of the signing job with the card and the TSA (CON-2, PIN-2);
- the city's staff through the staff API (``/contracts``, CON-2, CON-6, CON-7): 案件情報,
  開札 and 申出書 as messages of the city's systems on Kafka, the contract set, the
  city's agreement, the signed PDF and its validation;
- the surety company publishing its certificates on D・Sure, and the contractor handing
  number and key to the city (SUR-1), for 契約保証 before conclusion and 前払金保証 after.

Each step waits for the hub's answer on Kafka (:class:`CaseTimeline`), so a step that
does not come back names itself in a ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from card_agent.card import CardBackend
from card_agent.client import GatewayClient
from card_agent.flows import Agent
from card_agent.tsa import AgentTimeStamper, TsaInMaintenance, parse_windows
from connectors._shared.errors import PeerInMaintenance
from connectors._shared.tls import default_tls_context
from devkit.pki import CardCredentials, DevPki
from hub.sample.case import SampleCase
from hub.sample.timeline import CaseTimeline
from pipelines.registration.qualification_csv import import_qualifications_csv
from schemas.envelope import Envelope, new_envelope, utc_now
from schemas.registration import Domain
from schemas.registry import Payload
from schemas.surety import SuretyCheckRequested, SuretyKeySource, SuretyProduct
from schemas.topics import Topics, TopicSpec

__all__ = ["CaseOutcome", "CaseRun", "Publisher", "Stage"]

PRODUCER = "hub.sample"


class Publisher(Protocol):
    """Where the city's systems put their messages (the hub's OutboxPublisher fits)."""

    async def publish(self, topic: TopicSpec, *envelopes: Envelope[Any]) -> None: ...


@dataclass(frozen=True)
class Stage:
    """The running hub and its peers, as the case's parties reach them."""

    hub_url: str
    engine: Engine
    publisher: Publisher
    staff_token: str = field(repr=False)
    dsure_url: str
    dsure_issuer_token: str = field(repr=False)
    tsa_url: str
    pki: DevPki
    tsa_maintenance: tuple[str, ...] = ()
    """The TSA's announced windows (WIN-3) as the contractor's agent knows them."""
    mail_spool: Path | None = None
    """Where the SMTP peer writes what it receives: the contractor's mailbox, where the
    review links and one-time codes arrive (CON-3)."""


_REVIEW_URL = re.compile(r"/contract/review/([A-Za-z0-9_-]{20,})")
_CODE = re.compile(r"確認コード : ([0-9]{6})")


@dataclass
class CaseOutcome:
    company_id: str = ""
    signed_pdf: bytes = b""
    validation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class _ContractorConsole:
    """The contractor at the agent: types the PIN and password, confirms signing."""

    def __init__(self, pin: str, password: str, say: Callable[[str], None] | None) -> None:
        self._pin, self._password, self._say = pin, password, say

    def say(self, text: str) -> None:
        if self._say is not None:
            self._say(text)

    def ask_pin(self, prompt: str) -> str:
        return self._pin

    def ask_secret(self, prompt: str) -> str:
        return self._password

    def confirm(self, prompt: str) -> bool:
        return True

    def wait_for_card_swap(self, prompt: str) -> None:
        raise RuntimeError("the sample case never swaps cards")


class CaseRun:
    """One case from registration to the advance payment; each step also runs alone."""

    def __init__(self, stage: Stage, case: SampleCase, timeline: CaseTimeline, *,
                 backend: CardBackend, card: CardCredentials, pin: str,
                 reader: str | None = None, say: Callable[[str], None] | None = print,
                 timeout_s: float = 90.0) -> None:
        self.stage, self.case, self.timeline = stage, case, timeline
        self.card, self.say, self.timeout_s = card, say, timeout_s
        self.outcome = CaseOutcome()
        self.links_used: list[str] = []
        """Review links (their tokens) the contractor acted on, oldest first (CON-3)."""
        self._codes_used: set[str] = set()
        # Mails already in the spool belong to earlier cases (sequential cases may share an
        # address): a code or link there is never this case's.
        spool = stage.mail_spool
        self._earlier_mails = frozenset(spool.glob("*.eml")) if spool is not None else frozenset()
        # the process's TLS context: httpx loads its CA bundle for each client otherwise
        self._http = httpx.Client(base_url=stage.hub_url, timeout=60,
                                  verify=default_tls_context())
        tsa = AgentTimeStamper(stage.tsa_url, stage.pki.trust_roots,
                               parse_windows(json.dumps(list(stage.tsa_maintenance))))
        where = {"procuring_entity": case.entity, "system": "e-contract", "domain": "works"}
        self.agent = Agent(backend=backend,
                           gateway=GatewayClient(self._http, card.chain, where),
                           console=_ContractorConsole(pin, case.password, None),
                           reader=reader, tsa=tsa)
        timeline.keys |= {case.user_id, case.case_id}

    def close(self) -> None:
        self._http.close()

    def _tell(self, text: str) -> None:
        if self.say is not None:
            self.say(text)

    async def _send(self, topic: TopicSpec, payload: Payload) -> None:
        await self.stage.publisher.publish(topic, new_envelope(
            payload, correlation_id=self.case.case_id, procuring_entity=self.case.entity,
            producer=PRODUCER))

    async def _wait(self, message_type: str, where: Callable[[Envelope[Any]], bool] = lambda _: True
                    ) -> Envelope[Any]:
        return await self.timeline.wait_for(message_type, self.timeout_s, where)

    def staff(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call of the city's staff API (raises on a 4xx/5xx answer)."""
        headers = {"Authorization": f"Bearer {self.stage.staff_token}",
                   **kwargs.pop("headers", {})}
        reply = self._http.request(method, path, headers=headers, **kwargs)
        if reply.status_code >= 400:
            raise RuntimeError(f"staff API {method} {path}: {reply.status_code} {reply.text}")
        return reply

    # -- the steps -------------------------------------------------------------------------

    async def register(self) -> str:
        """資格審査情報 imported; the contractor registers its IC card (利用者登録)."""
        c = self.case

        def imported() -> None:
            with Session(self.stage.engine) as session, session.begin():
                import_qualifications_csv(session, c.qualification_csv(), c.entity,
                                          Domain.WORKS, utc_now())

        await asyncio.to_thread(imported)
        self._tell(f"1. 資格審査情報 imported for user ID {c.user_id}; 利用者登録 with the "
                   f"IC card (serial {self.card.serial}) through the card agent")
        answer = await asyncio.to_thread(self.agent.register, c.registration_fields())
        if answer.get("status") != "done" or not answer.get("company_id"):
            raise RuntimeError(f"利用者登録 not accepted: {answer}")
        self.outcome.company_id = str(answer["company_id"])
        self._tell(f"   accepted: 企業ID {self.outcome.company_id}")
        return self.outcome.company_id

    async def open_case(self) -> None:
        """案件情報 and 開札 from the city's systems; the contractor's 申出書 (CON-1)."""
        c, now = self.case, utc_now()
        self._tell(f"2. 案件 {c.case_id} 「{c.subject}」 {c.amount_yen:,} 円: 案件情報, 開札, "
                   "電子契約利用申出書")
        await self._send(Topics.CASE_EVENTS, c.registered(self.outcome.company_id))
        await self._send(Topics.CONTRACT_COMMANDS, c.opened(now, self.outcome.company_id))
        await self._send(Topics.CONTRACT_COMMANDS, c.application(now))
        await self._wait("econtract.step-recorded",
                         lambda e: e.payload.status.value == "applied")

    def issue_guarantee(self, product: SuretyProduct, **differ: Any) -> tuple[str, str]:
        """The surety company publishes the certificate on D・Sure: (number, 認証キー).

        ``differ`` overrides certificate fields (e.g. ``guarantee_amount``), for a
        certificate that does not match the case (SUR-2)."""
        number = f"{random.randint(10000, 99999)}-{random.randint(1000, 9999)}M"
        cert = self.case.certificate(product, number)
        if differ:
            cert = type(cert).model_validate({**cert.model_dump(), **differ})
        reply = httpx.post(f"{self.stage.dsure_url}/api/v1/issuer/certificates",
                           content=cert.model_dump_json(), timeout=10, headers={
                               "Authorization": f"Bearer {self.stage.dsure_issuer_token}"},
                           verify=default_tls_context())
        reply.raise_for_status()
        body: dict[str, str] = reply.json()
        return body["contract_number"], body["auth_key"]

    async def hand_over(self, product: SuretyProduct, **differ: Any) -> str:
        """The contractor hands number + key to the city (SUR-1); the number. ``differ``
        as in :meth:`issue_guarantee`."""
        number, key = await asyncio.to_thread(self.issue_guarantee, product, **differ)
        self._tell(f"   {product.label_ja} {number}: number and 認証キー uploaded (SUR-1)")
        await self._send(Topics.SURETY_COMMANDS, SuretyCheckRequested(
            contract_number=number, auth_key=key, source=SuretyKeySource.UPLOAD,
            expected_product=product))
        return number

    async def surety(self, product: SuretyProduct) -> Envelope[Any]:
        """The contractor hands number + key to the city (SUR-1); the hub checks (SUR-2)."""
        number = await self.hand_over(product)
        return await self._wait("surety.accepted", lambda e: e.payload.contract_number == number)

    async def contract_set(self) -> None:
        title = f"工事請負契約書 {self.case.case_id}"
        self._tell("4. the city uploads the contract set; a review link is mailed (CON-3)")
        await asyncio.to_thread(self.staff, "POST", f"/contracts/{self.case.case_id}/contract-set",
                                params={"title": title}, content=self.case.contract_pdf(),
                                headers={"Content-Type": "application/pdf"})

    def _mailbox(self, to: str) -> list[str]:
        """The plain-text bodies of the mails the SMTP peer received for ``to`` since this
        case began, oldest first."""
        spool = self.stage.mail_spool
        if spool is None:
            raise RuntimeError("the stage names no mail spool: the contractor reads no mail")
        bodies = []
        for path in sorted(spool.glob("*.eml")):
            if path in self._earlier_mails:
                continue
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            if to.lower() in {a.addr_spec.lower() for a in msg["To"].addresses}:
                part = msg.get_body(("plain",))
                bodies.append(str(part.get_content()) if part is not None else "")
        return bodies

    async def _from_mail(self, to: str, pattern: re.Pattern[str], used: Callable[[str], bool],
                         what: str) -> str:
        deadline = time.monotonic() + self.timeout_s
        while True:
            found = [m.group(1) for body in await asyncio.to_thread(self._mailbox, to)
                     if (m := pattern.search(body)) and not used(m.group(1))]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} arrived for {to}")
            await asyncio.sleep(0.2)

    async def review_link(self) -> str:
        """The newest review link the contractor has not acted on yet, as mailed (CON-3)."""
        return await self._from_mail(self.case.authorized.email, _REVIEW_URL,
                                     lambda token: token in self.links_used, "review mail")

    def review(self, token: str, action: str, **body: Any) -> httpx.Response:
        """One POST on the review page (agree, reject, forward, resend); the raw answer."""
        self.links_used.append(token)
        return self._http.post(f"/contract/review/{token}/{action}",
                               json={"by": self.case.authorized.email, **body})

    async def _code(self, token: str) -> str:
        """The one-time code for agreeing or rejecting, asked for and read from the mail."""
        asked = await asyncio.to_thread(
            self._http.post, f"/contract/review/{token}/code",
            json={"by": self.case.authorized.email})
        if asked.status_code != 202:
            raise RuntimeError(f"review code: {asked.status_code} {asked.text}")
        code = await self._from_mail(self.case.authorized.email, _CODE,
                                     lambda c: c in self._codes_used, "confirmation code")
        self._codes_used.add(code)
        return code

    async def contractor_agrees(self, token: str | None = None) -> None:
        link = token or await self.review_link()
        self._tell(f"5. the contractor opens the link, asks for the one-time code and agrees "
                   f"({self.case.authorized.email})")
        code = await self._code(link)
        reply = await asyncio.to_thread(self.review, link, "agree", code=code)
        if reply.status_code != 202:
            raise RuntimeError(f"review agree: {reply.status_code} {reply.text}")

    async def contractor_rejects(self, reason: str) -> Envelope[Any]:
        """同意せず却下 with a reason (CON-2): the case goes back to the city."""
        link = await self.review_link()
        self._tell(f"5. the contractor rejects the contract set: {reason}")
        code = await self._code(link)
        reply = await asyncio.to_thread(self.review, link, "reject", reason=reason, code=code)
        if reply.status_code != 202:
            raise RuntimeError(f"review reject: {reply.status_code} {reply.text}")
        return await self._wait("econtract.step-recorded",
                                lambda e: e.payload.status.value == "rejected")

    async def ask_resend(self, token: str) -> str:
        """再配信の依頼 from an old link's page (CON-3); the new link's token."""
        self._tell("   the contractor asks for the review link again (CON-3)")
        reply = await asyncio.to_thread(self.review, token, "resend")
        if reply.status_code != 202:
            raise RuntimeError(f"review resend: {reply.status_code} {reply.text}")
        return await self.review_link()

    async def contractor_signs(self) -> None:
        """The signing job is signed on the IC card (PAdES B-T) and accepted (CON-5)."""
        self._tell("6. the contractor signs the job with the IC card (PAdES B-T, PIN-2)")
        await asyncio.to_thread(self._sign_job)
        await self._wait("econtract.step-recorded",
                         lambda e: e.payload.status.value == "contractor-signed")

    def _sign_job(self) -> None:
        self.agent.login()
        deadline = time.monotonic() + self.timeout_s
        while True:
            pending = [j for j in self.agent.gateway.jobs()
                       if j["status"] == "pending" and self.case.case_id in j["subject"]]
            if pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("no signing job for the contractor")
            time.sleep(0.2)
        try:
            answer = self.agent.sign_job(pending[0]["id"], chain=self.card.chain)
        except TsaInMaintenance as exc:  # the hub's name for a held peer (WIN-3)
            raise PeerInMaintenance("tsa", exc.until) from exc
        if answer is None or answer.get("status") != "signed":
            raise RuntimeError(f"the signed PDF was not accepted: {answer}")

    async def city_agrees(self) -> httpx.Response:
        """The city's officer agrees through the staff API; the raw answer (202 or 4xx)."""
        return await asyncio.to_thread(
            self._http.post, f"/contracts/{self.case.case_id}/city-agreement",
            json={"by": self.case.city_officer.email},
            headers={"Authorization": f"Bearer {self.stage.staff_token}"})

    async def city_signs(self) -> Envelope[Any]:
        self._tell("7. the city agrees; its signer adds PAdES B-LT with the TSA (CON-2, CON-7)")
        reply = await self.city_agrees()
        if reply.status_code != 202:
            raise RuntimeError(f"city agreement: {reply.status_code} {reply.text}")
        return await self._wait("econtract.concluded")

    async def registered_in_erp(self, kind: str) -> Envelope[Any]:
        return await self._wait("erp.registered", lambda e: e.payload.kind.value == kind)

    async def signed_document(self) -> bytes:
        case_id = self.case.case_id
        pdf = (await asyncio.to_thread(self.staff, "GET", f"/contracts/{case_id}/document")
               ).content
        report = (await asyncio.to_thread(self.staff, "POST",
                                          f"/contracts/{case_id}/validation")).json()
        self.outcome.signed_pdf, self.outcome.validation = pdf, report
        return bytes(pdf)

    async def run(self) -> CaseOutcome:
        """The whole case, in the order of CON-2 and SUR-6."""
        started = time.monotonic()
        await self.register()
        await self.open_case()
        self._tell("3. 契約保証 from the surety company, checked against the case (SUR-2)")
        await self.surety(SuretyProduct.PERFORMANCE)
        await self.contract_set()
        await self.contractor_agrees()
        await self.contractor_signs()
        await self.city_signs()
        await self.registered_in_erp("contract")
        self._tell("8. 前払金保証 for the advance payment (SUR-6): the request goes to the ERP")
        await self.surety(SuretyProduct.ADVANCE_PAYMENT)
        await self.registered_in_erp("advance-payment")
        await self.signed_document()
        self.outcome.seconds = time.monotonic() - started
        return self.outcome
