"""The invoice rules (請求書, INV-1 … INV-3) as pure functions.

- INV-1: a qualified invoice (適格請求書) carries the issuer number ``T`` + 13-digit 法人番号
  with a valid check digit (python-stdnum ``stdnum.jp.cn``), and that number must already
  be in the contractor's user data (the qualification rows of its 企業ID).
- INV-2: a digital invoice is read from JP PINT UBL (:mod:`.ubl`); then the same checks.
- INV-3: an accepted invoice becomes a payment request in the ERP, once per invoice number.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from stdnum.jp import cn

from pipelines.invoices.ubl import read_jp_pint
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.invoice import InvoiceAccepted, InvoiceFields, InvoiceRejected, InvoiceSubmitted
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import nfkc
from schemas.topics import Topics, TopicSpec

__all__ = ["InvoiceDecision", "business_key", "decide_invoice", "issuer_violation",
           "tax_violations"]

_REGISTER_JA = ("利用者情報（資格審査情報）に適格請求書発行事業者登録番号を登録してから、"
                "請求書を再送してください。")
_REGISTER_EN = ("Have the qualified-invoice issuer number added to your user data "
                "(qualification registry) first, then resend the invoice.")


@dataclass(frozen=True)
class InvoiceDecision:
    emits: tuple[tuple[TopicSpec, Payload], ...]
    accepted: InvoiceAccepted | None = None


def _inv1(ja: str, en: str, next_ja: str, next_en: str) -> RuleViolation:
    return RuleViolation(rule_id="INV-1", message_ja=ja, message_en=en, next_step_ja=next_ja,
                         next_step_en=next_en, field="issuer_number")


def issuer_violation(number: str, registered: frozenset[str] | None) -> RuleViolation | None:
    """INV-1: T + 13 digits, a valid 法人番号 check digit, registered for the contractor.

    ``registered`` is None when the hub knows no contractor with the invoice's 企業ID.
    """
    if not re.fullmatch(r"T[0-9]{13}", number):
        hint_ja = "（全角文字は使えません）" if nfkc(number) != number else ""
        return _inv1(f"登録番号「{number}」は「T＋13桁の数字」ではありません{hint_ja}。",
                     f"The issuer number {number!r} is not 'T' followed by 13 digits.",
                     "半角で「T」と法人番号13桁を記載してください（例：T1234567890123）。",
                     "Write 'T' and the 13-digit corporate number in half-width characters.")
    if not cn.is_valid(number[1:]):
        return _inv1(f"登録番号「{number}」の法人番号のチェックデジットが正しくありません。",
                     f"The issuer number {number} has a wrong 法人番号 check digit.",
                     "国税庁の適格請求書発行事業者公表サイトで登録番号を確認してください。",
                     "Check the number on the NTA's qualified invoice issuer register.")
    if registered is None:
        return _inv1("請求者の企業IDが利用者登録されていません。",
                     "No registered contractor has the invoice's company ID (企業ID).",
                     "利用者登録を済ませてから請求書を送ってください。",
                     "Complete the user registration before sending invoices.")
    if number not in registered:
        return _inv1(f"登録番号「{number}」は請求者の利用者情報に登録されていません。",
                     f"The issuer number {number} is not in the contractor's user data.",
                     _REGISTER_JA, _REGISTER_EN)
    return None


def tax_violations(fields: InvoiceFields) -> tuple[RuleViolation, ...]:
    """INV-1: a qualified invoice states the tax per rate, each rate once, rounded once."""
    found: list[RuleViolation] = []
    rates = [s.rate_percent for s in fields.tax_subtotals]
    if len(set(rates)) != len(rates):
        found.append(RuleViolation(
            rule_id="INV-1", message_ja="同じ税率の内訳が複数あります。",
            message_en="A tax rate is listed more than once.",
            next_step_ja="税率ごとに合計した課税標準額と消費税額を1行ずつ記載してください。",
            next_step_en="State one taxable amount and one tax per rate.",
            field="tax_subtotals"))
    for n, sub in enumerate(fields.tax_subtotals):
        # 端数処理は税率ごとに1回: any rounding of the exact tax is accepted, nothing more.
        if abs(sub.tax_amount * 100 - sub.taxable_amount * sub.rate_percent) >= 100:
            found.append(RuleViolation(
                rule_id="INV-1",
                message_ja=(f"{sub.rate_percent}%の消費税額{sub.tax_amount:,}円が課税標準額"
                            f"{sub.taxable_amount:,}円と合いません。"),
                message_en=(f"The {sub.rate_percent}% tax of JPY {sub.tax_amount:,} does not fit "
                            f"the taxable JPY {sub.taxable_amount:,}."),
                next_step_ja="税率ごとに課税標準額×税率の端数を1回だけ処理した額を記載してください。",
                next_step_en="State per rate the taxable amount times the rate, rounded once.",
                field=f"tax_subtotals[{n}]"))
    return tuple(found)


def business_key(entity: str, contract_number: str, contractor_id: str, invoice_id: str) -> str:
    """The ERP payment's key: one per contractor and invoice number (INV-3)."""
    digest = hashlib.sha256(f"{entity}|{contractor_id}|{invoice_id}".encode()).hexdigest()
    return f"{contract_number}:invoice:{digest[:32]}"


def _rejected(cmd: InvoiceSubmitted, invoice_id: str | None,
              violations: tuple[RuleViolation, ...]) -> InvoiceDecision:
    return InvoiceDecision(((Topics.INVOICE_EVENTS, InvoiceRejected(
        case_id=cmd.case_id, contractor_id=cmd.contractor_id, invoice_id=invoice_id,
        violations=violations)),))


def decide_invoice(cmd: InvoiceSubmitted, *, registered: frozenset[str] | None,
                   accepted_before: frozenset[str], entity: str) -> InvoiceDecision:
    """INV-1 … INV-3 for one invoice; ``accepted_before``: the contractor's invoice numbers."""
    fields: InvoiceFields | None = cmd.fields
    if cmd.ubl_xml is not None:
        read = read_jp_pint(cmd.ubl_xml)
        if read.fields is None:
            return _rejected(cmd, read.invoice_id, read.violations)
        fields = read.fields
    assert fields is not None  # InvoiceSubmitted holds exactly one of the two
    wrong = issuer_violation(fields.issuer_number, registered)
    taxes = tax_violations(fields)
    if wrong is not None or taxes:
        return _rejected(cmd, fields.invoice_id, (*((wrong,) if wrong else ()), *taxes))
    if fields.invoice_id in accepted_before:
        return _rejected(cmd, fields.invoice_id, (RuleViolation(
            rule_id="INV-3",
            message_ja=f"請求書番号「{fields.invoice_id}」の請求書は既に受理され、支払請求済みです。",
            message_en=f"Invoice {fields.invoice_id} was already accepted and sent for payment.",
            next_step_ja="二重請求になるため受け付けません。訂正する場合は市の担当課にご連絡ください。",
            next_step_en="A second payment is refused; to correct it, contact the city's office.",
            field="invoice_id"),))
    if fields.payable_amount < 1:
        return _rejected(cmd, fields.invoice_id, (RuleViolation(
            rule_id="INV-3", message_ja="請求金額が0円です。",
            message_en="The payable amount is zero.",
            next_step_ja="請求金額を確認してください。", next_step_en="Check the payable amount.",
            field="payable_amount"),))
    key = business_key(entity, cmd.contract_number, cmd.contractor_id, fields.invoice_id)
    accepted = InvoiceAccepted(
        case_id=cmd.case_id, contractor_id=cmd.contractor_id, invoice_id=fields.invoice_id,
        issuer_number=fields.issuer_number, payable_amount=fields.payable_amount,
        source_format=cmd.format, erp_business_key=key)
    payment = ErpRegistrationRequested(
        kind=ErpRegistrationKind.PAYMENT, business_key=key, contract_number=cmd.contract_number,
        contractor_id=cmd.contractor_id, contractor_name=fields.seller_name[:100],
        amount_jpy=fields.payable_amount, request_date=fields.issue_date,
        invoice_number=fields.issuer_number)
    return InvoiceDecision(((Topics.INVOICE_EVENTS, accepted), (Topics.ERP_COMMANDS, payment)),
                           accepted)
