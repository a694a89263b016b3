"""What the agent does for a person, step by step: PIN, login, registration, change,
renewal, signing jobs. The console (prompts, output) is passed in, so the same flows
run at a terminal and in tests.

PIN-1: the card's PIN status is read before asking; a locked card is reported, not
tried; a wrong PIN is shown with the retries left and never retried automatically. The
PIN lives only in a local variable on its way to the card.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from card_agent.card import CardBackend, CardSession
from card_agent.client import GatewayClient
from card_agent.document import DocumentView, read_document
from card_agent.errors import CardLockedError
from card_agent.signing import sign_pdf
from card_agent.tsa import AgentTimeStamper

__all__ = ["Agent", "Console", "printable_summary"]


class Console(Protocol):
    def say(self, text: str) -> None: ...

    def ask_pin(self, prompt: str) -> str: ...

    def ask_secret(self, prompt: str) -> str: ...

    def confirm(self, prompt: str) -> bool: ...

    def wait_for_card_swap(self, prompt: str) -> None: ...


@dataclass
class Agent:
    """One agent: a card backend, the hub gateway, and the TSA connector for B-T."""

    backend: CardBackend
    gateway: GatewayClient
    console: Console
    reader: str | None = None
    tsa: AgentTimeStamper | None = None

    def unlock(self) -> CardSession:
        """Open the card and verify its PIN once (PIN-1). Raises the card errors."""
        card = self.backend.open(self.reader)
        try:
            status = card.pin_status()
            if status.locked:
                raise CardLockedError()
            left = "" if status.retries_left is None else f"(残り{status.retries_left}回)"
            pin = self.console.ask_pin(f"PIN{left}: ")
            card.verify_pin(pin)
            del pin
        except BaseException:
            card.close()
            raise
        return card

    def login(self) -> dict[str, Any]:
        with self.unlock() as card:
            return self.gateway.login(card)

    def register(self, fields: dict[str, Any]) -> dict[str, Any]:
        """利用者登録: the password is asked here and sent only to the gateway (REG-3)."""
        password = self.console.ask_secret("パスワード(不要なら空欄) / password (blank if none): ")
        if password:
            fields = {**fields, "password": password}
        with self.unlock() as card:
            request_id = self.gateway.register(card, fields)
        return self.gateway.outcome(request_id, wait_s=30)

    def change(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.unlock() as card:
            request_id = self.gateway.change(card, fields)
        return self.gateway.outcome(request_id, wait_s=30)

    def renew(self, fields: dict[str, Any]) -> dict[str, Any]:
        """ICカード更新: the old card's PIN and proof first, then the new card's (RNW-6)."""
        self.console.say("旧ICカードを差し込んでください / insert the OLD card")
        with self.unlock() as old:
            old_cert = old.certificate()
            old_proof = self.gateway.prove(old)
        self.console.wait_for_card_swap("旧カードを抜き、新ICカードを差し込んでください / "
                                        "remove the old card and insert the NEW card")
        with self.unlock() as new:
            if new.certificate() == old_cert:
                self.console.say("新しいカードではありません / this is still the old card")
                raise SystemExit(2)
            new_proof = self.gateway.prove(new)
        request_id = self.gateway.renew(old_proof, new_proof, fields)
        return self.gateway.outcome(request_id, wait_s=30)

    def sign_job(self, job_id: str, chain: Any = ()) -> dict[str, Any] | None:
        """Show what the PDF says, sign it on confirmation (PAdES B-T), return the hub's answer.

        Nothing is sent unless the person confirms, and nothing half-signed is sent: the
        PDF goes out only after pyHanko has finished the signature and its timestamp.
        """
        if self.tsa is None:
            raise ValueError("signing needs the TSA (--tsa-url)")
        job = self.gateway.job(job_id)
        pdf = self.gateway.document(job)  # DocumentMismatchError (AGT-4): not the job's
        self.console.say(describe_document(read_document(pdf), job))
        if not self.console.confirm("この文書に署名しますか / sign this document? [y/N] "):
            self.console.say("署名しませんでした / not signed")
            return None
        # WIN-3: inside a TSA window, TsaInMaintenance comes up from here before the
        # card is touched; the job stays pending at the hub.
        self.tsa.check_open(_utcnow())
        with self.unlock() as card:
            signed = sign_pdf(pdf, card, self.tsa, chain=chain,
                              reason=f"署名依頼 {job_id}")
        return self.gateway.submit_signed(job_id, signed)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def describe_document(view: DocumentView, job: dict[str, Any]) -> str:
    """What the PDF itself says (the agent read it), then the hub's description apart."""
    amounts = "、".join(f"{a:,} 円" for a in view.amounts_yen) or "(本文に金額なし / none found)"
    return (f"文書 / document (このPCで読み取り / read here):\n"
            f"  件名 / title   : {view.title}\n"
            f"  当事者 / parties: {'、'.join(view.parties)}\n"
            f"  金額 / amount  : {amounts}\n"
            f"  ページ / pages : {view.pages}\n"
            f"  SHA-256       : {view.sha256}\n"
            f"ハブの説明 / the hub's description: {job['subject']}、"
            f"{'、'.join(job['parties'])}、{job['amount_yen']:,} 円")


def printable_summary(outcome: dict[str, Any], render: Callable[[str], None]) -> None:
    """The outcome for a person (REG-10): 企業ID and a printable summary, or the rules."""
    status = outcome["status"]
    if status == "pending":
        render("受付済み・処理中です / accepted, still being processed: "
               f"request {outcome['request_id']}")
        return
    for v in outcome.get("violations", []):
        render(f"[{v['rule_id']}] {v['message_ja']}\n    {v['message_en']}")
        if v.get("next_step_ja"):
            render(f"    → {v['next_step_ja']} / {v['next_step_en']}")
    if status != "done":
        return
    summary = outcome.get("summary") or {}
    lines = ["==== 登録内容 / summary ===="]
    if outcome.get("company_id"):
        lines.append(f"企業ID / company ID : {outcome['company_id']}")
    for key, label in (("company_name", "企業名称"), ("procuring_entity", "調達機関"),
                       ("user_id", "ユーザID"), ("department_name", "部署名")):
        if summary.get(key):
            lines.append(f"{label} : {summary[key]}")
    card = summary.get("card") or summary.get("new_card") or {}
    if card:
        lines.append(f"ICカード : {card.get('holder_name', '')} "
                     f"(serial {card.get('serial')}, ～{card.get('not_after', '')[:10]})")
    contact = summary.get("card_department_contact") or {}
    if contact:
        lines.append(f"連絡先 : {contact.get('person_name')} {contact.get('address')} "
                     f"{contact.get('phone')} {contact.get('email')}")
    render("\n".join(lines))
