"""The invoice rules (請求書, INV-1 … INV-6) as pure functions.

- INV-1: a qualified invoice (適格請求書) carries the issuer number ``T`` + 13-digit 法人番号
  with a valid check digit (python-stdnum ``stdnum.jp.cn``), and that number must already
  be in the contractor's user data (the qualification rows of its 企業ID); and the other
  items: the transaction date, what was delivered, the amounts and tax per rate, the buyer.
- INV-2: a digital invoice is read strictly from JP PINT UBL (:mod:`.ubl`).
- INV-3: an accepted invoice becomes a payment request in the ERP, once per invoice number.
- INV-4: a digital invoice passes the official JP PINT rules first (:mod:`.gate`): a fatal
  assertion rejects it, a warning is recorded with the acceptance.
- INV-5: the tax breakdown per category and rate, and the arithmetic down to PayableAmount.
- INV-6: only an invoice (type 380) of a positive amount is paid; a credit note, another
  type or a negative invoice goes to the staff (``InvoiceNeedsStaffReview``). A correction
  (a reference to a preceding invoice) replaces that invoice's payment request while it is
  unpaid, and is refused once it is paid.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from stdnum.jp import cn

from pipelines.invoices.gate import gate_violations, run_gate
from pipelines.invoices.ubl import UblResult, parse_invoice, read_root
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceFields,
    InvoiceNeedsStaffReview,
    InvoiceRejected,
    InvoiceSubmitted,
)
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.text import nfkc
from schemas.topics import Topics, TopicSpec

__all__ = ["InvoiceDecision", "InvoiceStatus", "PriorInvoice", "business_key",
           "decide_invoice", "issuer_violation", "tax_violations"]

_REGISTER_JA = ("利用者情報（資格審査情報）に適格請求書発行事業者登録番号を登録してから、"
                "請求書を再送してください。")
_REGISTER_EN = ("Have the qualified-invoice issuer number added to your user data "
                "(qualification registry) first, then resend the invoice.")


TYPE_CODE_RULES = frozenset({"ibr-cl-01", "aligned-ibrp-cl-02-jp"})
"""The official rules on the invoice type code (UNCL1001, and 380 only in JP PINT)."""


class InvoiceStatus:
    """The state of an accepted invoice's payment (``inv_invoice.status``)."""

    REQUESTED = "requested"
    """Sent to the ERP as a payment request, not paid yet: a correction may replace it."""
    PAID = "paid"
    """Paid by the city (InvoicePaymentRecorded): a correction is refused."""
    REPLACED = "replaced"
    """Replaced by a correction, whose payment request replaced this one's."""


@dataclass(frozen=True)
class PriorInvoice:
    """An invoice of the same contractor the hub accepted before."""

    status: str
    business_key: str
    replaced_by: str | None = None


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


def _inv1_items(fields: InvoiceFields) -> list[RuleViolation]:
    """INV-1: the items a qualified invoice must state beyond the issuer (structured form)."""
    found = []
    if fields.transaction_date is None:
        found.append(RuleViolation(
            rule_id="INV-1", message_ja="取引年月日がありません（適格請求書の記載事項です）。",
            message_en="The transaction date is missing (a qualified invoice must state it).",
            next_step_ja="納品日または請求対象期間を記載して再送してください。",
            next_step_en="State the delivery date or the period invoiced, then resend.",
            field="transaction_date"))
    if not (fields.description or "").strip():
        found.append(RuleViolation(
            rule_id="INV-1", message_ja="取引内容がありません（適格請求書の記載事項です）。",
            message_en="The description of what was delivered is missing (a qualified "
                       "invoice must state it).",
            next_step_ja="取引内容（工事名・品目）を記載して再送してください。",
            next_step_en="State what was delivered (the works or items), then resend.",
            field="description"))
    return found


def tax_violations(fields: InvoiceFields) -> tuple[RuleViolation, ...]:
    """INV-5: the tax per category and rate, each once, 10 % S and 8 % AA only, 0 % or no
    rate for E, Z, G and O, the tax of each rounded once (INV-1 asks for it per rate)."""
    found: list[RuleViolation] = []
    keys = [(s.category, s.rate_percent) for s in fields.tax_subtotals]
    if len(set(keys)) != len(keys):
        found.append(RuleViolation(
            rule_id="INV-5", message_ja="同じ税区分・税率の内訳が複数あります。",
            message_en="A tax category and rate is listed more than once.",
            next_step_ja="税区分・税率ごとに合計した課税標準額と消費税額を1行ずつ記載してください。",
            next_step_en="State one taxable amount and one tax per tax category and rate.",
            field="tax_subtotals"))
    for n, sub in enumerate(fields.tax_subtotals):
        rate = sub.rate_percent or 0
        allowed = {"S": (10,), "AA": (8,)}.get(sub.category, (0, None))
        stated = "なし" if sub.rate_percent is None else f"{sub.rate_percent}%"
        if sub.rate_percent not in allowed:
            found.append(RuleViolation(
                rule_id="INV-5",
                message_ja=(f"税区分{sub.category}に税率{stated}は使えません（Sは10%、AAは8%、"
                            "E・Z・G・Oは0%か記載なし）。"),
                message_en=(f"Category {sub.category} cannot have the rate "
                            f"{stated.replace('なし', 'none')} (S is 10 %, AA 8 %, E, Z, G "
                            "and O 0 % or none)."),
                next_step_ja="日本の税率（標準10%・軽減8%）で記載し直してください。",
                next_step_en="State Japan's rates (10 % standard, 8 % reduced) and resend.",
                field=f"tax_subtotals[{n}]"))
            continue
        # 端数処理は税率ごとに1回: any rounding of the exact tax is accepted, nothing more.
        if abs(sub.tax_amount * 100 - sub.taxable_amount * rate) >= 100:
            found.append(RuleViolation(
                rule_id="INV-5",
                message_ja=(f"{rate}%の消費税額{sub.tax_amount:,}円が課税標準額"
                            f"{sub.taxable_amount:,}円と合いません。"),
                message_en=(f"The {rate}% tax of JPY {sub.tax_amount:,} does not fit "
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


def _inv6(ja: str, en: str, next_ja: str, next_en: str, field: str) -> RuleViolation:
    return RuleViolation(rule_id="INV-6", message_ja=ja, message_en=en, next_step_ja=next_ja,
                         next_step_en=next_en, field=field)


def _staff_review(cmd: InvoiceSubmitted, read: UblResult, registered: frozenset[str] | None,
                  warnings: tuple[RuleViolation, ...]) -> InvoiceDecision:
    """INV-6: a credit note, another type or a negative invoice is a task for the staff."""
    # The reader reports each of these when missing, so a staff review always has them.
    assert read.invoice_id is not None
    assert read.type_code is not None
    assert read.payable is not None
    assert read.issuer_number is not None
    wrong = issuer_violation(read.issuer_number, registered)
    if wrong is not None:
        return _rejected(cmd, read.invoice_id, (wrong,))
    reasons = []
    if read.type_code != "380":
        kind_ja = "クレジットノート（381）" if read.type_code == "381" else \
            f"種類コード{read.type_code}の文書"
        reasons.append(_inv6(
            f"{kind_ja}は請求書（380）ではないため、支払はしません。",
            f"A document of type {read.type_code} is not an invoice (380) and is not paid.",
            "市の担当課が内容を確認し、支払額との調整をご連絡します。",
            "The city's office reviews it and tells you how it is settled against payments.",
            "InvoiceTypeCode"))
    if read.payable < 0:
        reasons.append(_inv6(
            f"請求金額がマイナス（{read.payable:,}円、返品・値引など）のため、支払はしません。",
            f"The payable amount is negative (JPY {read.payable:,}: a return or a credit), "
            "so nothing is paid.",
            "市の担当課が内容を確認し、次回の支払との相殺などをご連絡します。",
            "The city's office reviews it and tells you how it is offset against payments.",
            "PayableAmount"))
    if not reasons:  # a type 380 with a negative breakdown but a positive total
        reasons.append(_inv6(
            "税区分の課税標準額にマイナスがあるため、自動では支払いません。",
            "A tax category has a negative taxable amount, so it is not paid automatically.",
            "市の担当課が内容を確認してご連絡します。",
            "The city's office reviews it and contacts you.", "TaxSubtotal"))
    return InvoiceDecision(((Topics.INVOICE_EVENTS, InvoiceNeedsStaffReview(
        case_id=cmd.case_id, contractor_id=cmd.contractor_id, invoice_id=read.invoice_id,
        type_code=read.type_code, payable_amount=read.payable,
        preceding_invoice_id=read.preceding_invoice_id, reasons=tuple(reasons),
        warnings=warnings)),))


def _correction(fields: InvoiceFields,
                prior: Mapping[str, PriorInvoice]) -> PriorInvoice | RuleViolation | None:
    """INV-6: the unpaid invoice a correction replaces, or why it cannot replace it."""
    ref = fields.preceding_invoice_id
    if ref is None:
        return None
    where = "preceding_invoice_id"
    original = prior.get(ref)
    if original is None:
        return _inv6(
            f"訂正元の請求書「{ref}」は、この請求者から受理した請求書にありません。",
            f"The corrected invoice {ref} is not an invoice the city accepted from you.",
            "訂正元の請求書番号を確認してください。新しい請求なら訂正元の参照を外して再送してください。",
            "Check the number of the invoice corrected; for a new invoice, remove the "
            "reference and resend.", where)
    if original.status == InvoiceStatus.PAID:
        return _inv6(
            f"訂正元の請求書「{ref}」は既に支払済みのため、訂正請求書で置き換えられません。",
            f"Invoice {ref} has already been paid, so a correction cannot replace it.",
            "差額の精算は市の担当課にご連絡ください（返金・追加請求は担当課と調整します）。",
            "Contact the city's office to settle the difference (refund or further invoice).",
            where)
    if original.status == InvoiceStatus.REPLACED:
        return _inv6(
            f"訂正元の請求書「{ref}」は既に請求書「{original.replaced_by}」で訂正されています。",
            f"Invoice {ref} was already replaced by invoice {original.replaced_by}.",
            f"訂正する場合は最新の請求書「{original.replaced_by}」を訂正元にしてください。",
            f"To correct it again, refer to the latest invoice, {original.replaced_by}.", where)
    return original


def decide_invoice(cmd: InvoiceSubmitted, *, registered: frozenset[str] | None,
                   accepted_before: Mapping[str, PriorInvoice] | frozenset[str],
                   entity: str) -> InvoiceDecision:
    """INV-1 … INV-6 for one invoice; ``accepted_before``: the contractor's invoices so far
    (a set of numbers means each is requested and unpaid)."""
    prior: Mapping[str, PriorInvoice] = accepted_before if isinstance(accepted_before, Mapping) \
        else {n: PriorInvoice(InvoiceStatus.REQUESTED, "") for n in accepted_before}
    fields: InvoiceFields | None = cmd.fields
    warnings: tuple[RuleViolation, ...] = ()
    if cmd.ubl_xml is not None:
        root = parse_invoice(cmd.ubl_xml)
        if isinstance(root, RuleViolation):
            return _rejected(cmd, None, (root,))
        fatal, warnings = gate_violations(run_gate(cmd.ubl_xml))
        read = read_root(root)
        if read.type_code == "381":
            # JP PINT has no credit note: its rules refuse the type code in an Invoice. The
            # credit is real all the same, so it goes to the staff with those findings.
            warnings = (*warnings, *(v for v in fatal if v.reference in TYPE_CODE_RULES))
            fatal = tuple(v for v in fatal if v.reference not in TYPE_CODE_RULES)
        if fatal or read.violations:
            return _rejected(cmd, read.invoice_id, (*fatal, *read.violations))
        if read.fields is None:
            return _staff_review(cmd, read, registered, warnings)
        fields = read.fields
    assert fields is not None  # InvoiceSubmitted holds exactly one of the two
    wrong = issuer_violation(fields.issuer_number, registered)
    problems = (*((wrong,) if wrong else ()), *_inv1_items(fields), *tax_violations(fields))
    if problems:
        return _rejected(cmd, fields.invoice_id, problems)
    if fields.invoice_id in prior:
        return _rejected(cmd, fields.invoice_id, (RuleViolation(
            rule_id="INV-3",
            message_ja=f"請求書番号「{fields.invoice_id}」の請求書は既に受理され、支払請求済みです。",
            message_en=f"Invoice {fields.invoice_id} was already accepted and sent for payment.",
            next_step_ja="二重請求になるため受け付けません。訂正する場合は訂正元の請求書番号を参照した"
                         "新しい番号の請求書を送ってください。",
            next_step_en="A second payment is refused; to correct it, send an invoice with a new "
                         "number that refers to this one.",
            field="invoice_id"),))
    if fields.payable_amount < 1:
        return _rejected(cmd, fields.invoice_id, (RuleViolation(
            rule_id="INV-3", message_ja="請求金額が0円です。",
            message_en="The payable amount is zero.",
            next_step_ja="請求金額を確認してください。", next_step_en="Check the payable amount.",
            field="payable_amount"),))
    original = _correction(fields, prior)
    if isinstance(original, RuleViolation):
        return _rejected(cmd, fields.invoice_id, (original,))
    key = business_key(entity, cmd.contract_number, cmd.contractor_id, fields.invoice_id)
    accepted = InvoiceAccepted(
        case_id=cmd.case_id, contractor_id=cmd.contractor_id, invoice_id=fields.invoice_id,
        issuer_number=fields.issuer_number, payable_amount=fields.payable_amount,
        source_format=cmd.format, erp_business_key=key, seller_name=fields.seller_name,
        buyer_name=fields.buyer_name, issue_date=fields.issue_date,
        transaction_date=fields.transaction_date, transaction_start=fields.transaction_start,
        description=fields.description, tax_subtotals=fields.tax_subtotals,
        due_date=fields.due_date,
        replaces_invoice_id=fields.preceding_invoice_id if original else None,
        warnings=warnings)
    payment = ErpRegistrationRequested(
        kind=ErpRegistrationKind.PAYMENT, business_key=key, contract_number=cmd.contract_number,
        contractor_id=cmd.contractor_id, contractor_name=fields.seller_name[:100],
        amount_jpy=fields.payable_amount, request_date=fields.issue_date,
        invoice_number=fields.issuer_number, due_date=fields.due_date,
        replaces_business_key=original.business_key if original and original.business_key
        else None)
    return InvoiceDecision(((Topics.INVOICE_EVENTS, accepted), (Topics.ERP_COMMANDS, payment)),
                           accepted)
