"""JP PINT digital invoices (デジタルインボイス, INV-2): read a UBL 2.1 Invoice, hardened.

The document comes from outside, so the parser never touches the network, never loads
a DTD, never expands an entity, and refuses any document that declares one (billion
laughs, external entities: OWASP XXE). Then the JP PINT essentials are checked
(Peppol PINT JP, ``urn:peppol:pint:billing-1@jp-1``): invoice number (cbc:ID), issue
date, seller registration number (cac:PartyTaxScheme/cbc:CompanyID ``T`` + 13 digits,
matching cbc:EndpointID under scheme 0188 = 法人番号), buyer, tax totals per rate
(税率ごとの消費税額, rounded once per rate), and the payable amount. Every problem is a
RuleViolation INV-2 whose ``field`` is the element's path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree
from pydantic import ValidationError

from schemas.invoice import InvoiceFields, TaxSubtotal
from schemas.rejection import RuleViolation

__all__ = ["JP_PINT_CUSTOMIZATION", "NS", "UblResult", "read_jp_pint"]

JP_PINT_CUSTOMIZATION = "urn:peppol:pint:billing-1@jp-1"
NS = {
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
_ROOT = f"{{{NS['inv']}}}Invoice"
_SELLER = "cac:AccountingSupplierParty/cac:Party"
_BUYER = "cac:AccountingCustomerParty/cac:Party"
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NEXT_JA = "請求書作成ソフトでJP PINT（デジタルインボイス）を正しく出力し直して再送してください。"
_NEXT_EN = "Export the invoice again as valid JP PINT from your invoicing software and resend it."


@dataclass(frozen=True)
class UblResult:
    fields: InvoiceFields | None
    violations: tuple[RuleViolation, ...]
    invoice_id: str | None = None


def _violation(element: str, ja: str, en: str) -> RuleViolation:
    return RuleViolation(rule_id="INV-2", message_ja=f"{element}：{ja}",
                         message_en=f"{element}: {en}", next_step_ja=_NEXT_JA,
                         next_step_en=_NEXT_EN, field=element)


def _parser() -> etree.XMLParser:
    # The text is ours in UTF-8 (the message carried it as str): a declared encoding is
    # ignored, so no exotic encoding can hide a DOCTYPE from the check before parsing.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=True,
                           collect_ids=False, encoding="utf-8")


class _Reader:
    """Reads elements by path and collects what is missing or malformed."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.problems: list[RuleViolation] = []

    def text(self, path: str, *, at: etree._Element | None = None,
             where: str | None = None) -> str | None:
        found = (self.root if at is None else at).find(path, NS)
        value = (found.text or "").strip() if found is not None else ""
        if not value:
            self.problems.append(_violation(where or path, "必須の要素がありません。",
                                            "a required element is missing."))
            return None
        return value

    def amount(self, path: str, *, at: etree._Element | None = None,
               where: str | None = None, required: bool = True) -> int | None:
        label = where or path
        node = (self.root if at is None else at).find(path, NS)
        if node is None and not required:
            return None
        raw = self.text(path, at=at, where=label)
        if raw is None:
            return None
        if node is not None and node.get("currencyID") not in (None, "JPY"):
            self.problems.append(_violation(label, "通貨はJPYにしてください。",
                                            "the currency must be JPY."))
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value != value.to_integral_value() or value < 0:
            self.problems.append(_violation(label,
                                            f"金額「{raw}」は0以上の整数（円）ではありません。",
                                            f"the amount {raw!r} is not whole yen."))
            return None
        return int(value)


def _parse(xml: str) -> etree._Element | RuleViolation:
    data = xml.encode("utf-8")
    if _FORBIDDEN.search(data):
        return _violation("DOCTYPE", "DTD・実体宣言を含む文書は受け付けません。",
                          "documents with a DTD or entity declarations are refused.")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        return _violation("Invoice", f"XMLとして読めません（{exc.msg}）。",
                          f"not well-formed XML ({exc.msg}).")
    if root.getroottree().docinfo.internalDTD is not None:
        return _violation("DOCTYPE", "DTDを含む文書は受け付けません。",
                          "documents with a DTD are refused.")
    if root.tag != _ROOT:
        return _violation("Invoice", "UBL 2.1 の Invoice 文書ではありません。",
                          "the root is not a UBL 2.1 Invoice.")
    return root


def _seller_number(r: _Reader) -> str | None:
    path = f"{_SELLER}/cac:PartyTaxScheme/cbc:CompanyID"
    number = r.text(path)
    if number is None:
        return None
    endpoint = r.root.find(f"{_SELLER}/cbc:EndpointID", NS)
    if (endpoint is not None and endpoint.get("schemeID") == "0188"
            and (endpoint.text or "").strip() != number.removeprefix("T")):
        r.problems.append(_violation(
            f"{_SELLER}/cbc:EndpointID",
            f"法人番号（{endpoint.text}）が登録番号（{number}）と一致しません。",
            f"the corporate number ({endpoint.text}) does not match the registration number "
            f"({number})."))
    return number


def _tax(r: _Reader) -> tuple[TaxSubtotal, ...]:
    totals = r.root.findall("cac:TaxTotal", NS)
    if not totals:
        r.problems.append(_violation("cac:TaxTotal", "税率ごとの消費税額がありません。",
                                     "the tax totals per rate are missing."))
        return ()
    total = totals[0]
    subtotals: list[TaxSubtotal] = []
    for n, node in enumerate(total.findall("cac:TaxSubtotal", NS), start=1):
        where = f"cac:TaxTotal/cac:TaxSubtotal[{n}]"
        taxable = r.amount("cbc:TaxableAmount", at=node, where=f"{where}/cbc:TaxableAmount")
        tax = r.amount("cbc:TaxAmount", at=node, where=f"{where}/cbc:TaxAmount")
        rate_text = r.text("cac:TaxCategory/cbc:Percent", at=node,
                           where=f"{where}/cac:TaxCategory/cbc:Percent")
        rate = Decimal(rate_text) if rate_text and re.fullmatch(r"\d{1,3}(\.0+)?", rate_text) \
            else None
        if rate_text and rate is None:
            r.problems.append(_violation(f"{where}/cac:TaxCategory/cbc:Percent",
                                         f"税率「{rate_text}」が読めません。",
                                         f"the rate {rate_text!r} is unreadable."))
        if taxable is None or tax is None or rate is None:
            continue
        # 端数処理は税率ごとに1回: any rounding of the exact tax is accepted, nothing more.
        if abs(Decimal(tax) - Decimal(taxable) * rate / 100) >= 1:
            r.problems.append(_violation(
                f"{where}/cbc:TaxAmount",
                f"{rate}%の消費税額{tax:,}円が課税標準額{taxable:,}円と合いません。",
                f"the {rate}% tax of JPY {tax:,} does not fit the taxable JPY {taxable:,}."))
        subtotals.append(TaxSubtotal(rate_percent=int(rate), taxable_amount=taxable,
                                     tax_amount=tax))
    if not subtotals and not r.problems:
        r.problems.append(_violation("cac:TaxTotal/cac:TaxSubtotal", "税率ごとの内訳がありません。",
                                     "no breakdown per tax rate."))
    stated = r.amount("cbc:TaxAmount", at=total, where="cac:TaxTotal/cbc:TaxAmount")
    if stated is not None and subtotals and stated != sum(s.tax_amount for s in subtotals):
        r.problems.append(_violation("cac:TaxTotal/cbc:TaxAmount",
                                     "消費税額の合計が税率ごとの内訳の合計と一致しません。",
                                     "the tax total is not the sum of the rates' taxes."))
    return tuple(subtotals)


def _payable(r: _Reader, tax: int) -> int | None:
    lmt = "cac:LegalMonetaryTotal"
    payable = r.amount(f"{lmt}/cbc:PayableAmount")
    exclusive = r.amount(f"{lmt}/cbc:TaxExclusiveAmount", required=False)
    inclusive = r.amount(f"{lmt}/cbc:TaxInclusiveAmount", required=False)
    prepaid = r.amount(f"{lmt}/cbc:PrepaidAmount", required=False) or 0
    rounding = r.amount(f"{lmt}/cbc:PayableRoundingAmount", required=False) or 0
    if exclusive is not None and inclusive is not None and inclusive != exclusive + tax:
        r.problems.append(_violation(f"{lmt}/cbc:TaxInclusiveAmount",
                                     "税込金額が税抜金額と消費税額の合計と一致しません。",
                                     "the amount with tax is not the amount without tax plus tax."))
    if payable is not None and inclusive is not None and payable != inclusive - prepaid + rounding:
        r.problems.append(_violation(f"{lmt}/cbc:PayableAmount",
                                     "請求金額が税込金額から前払額を引いた額と一致しません。",
                                     "the payable amount is not the amount with tax less prepaid."))
    return payable


def read_jp_pint(xml: str) -> UblResult:
    """INV-2: the invoice's essentials, or every problem found (each naming its element)."""
    root = _parse(xml)
    if isinstance(root, RuleViolation):
        return UblResult(None, (root,))
    r = _Reader(root)
    customization = r.text("cbc:CustomizationID")
    if customization is not None and customization != JP_PINT_CUSTOMIZATION:
        r.problems.append(_violation("cbc:CustomizationID",
                                     f"JP PINT（{JP_PINT_CUSTOMIZATION}）ではありません。",
                                     f"not JP PINT ({JP_PINT_CUSTOMIZATION})."))
    invoice_id = r.text("cbc:ID")
    issued = r.text("cbc:IssueDate")
    issue_date: date | None = None
    if issued is not None:
        try:
            issue_date = date.fromisoformat(issued)
        except ValueError:
            r.problems.append(_violation("cbc:IssueDate",
                                         f"日付「{issued}」が読めません（YYYY-MM-DD）。",
                                         f"the date {issued!r} is not YYYY-MM-DD."))
    currency = r.text("cbc:DocumentCurrencyCode")
    if currency is not None and currency != "JPY":
        r.problems.append(_violation("cbc:DocumentCurrencyCode", "通貨はJPYにしてください。",
                                     "the currency must be JPY."))
    seller_number = _seller_number(r)
    seller = r.text(f"{_SELLER}/cac:PartyLegalEntity/cbc:RegistrationName")
    buyer = r.text(f"{_BUYER}/cac:PartyLegalEntity/cbc:RegistrationName")
    subtotals = _tax(r)
    payable = _payable(r, sum(s.tax_amount for s in subtotals))
    if r.problems:
        return UblResult(None, tuple(r.problems), invoice_id[:100] if invoice_id else None)
    if not (invoice_id and issue_date and seller_number and seller and buyer) or payable is None:
        raise AssertionError("a missing element was not reported")  # _Reader reports each one
    try:
        fields = InvoiceFields(invoice_id=invoice_id, issue_date=issue_date,
                               issuer_number=seller_number, seller_name=seller,
                               buyer_name=buyer, tax_subtotals=subtotals, payable_amount=payable)
    except ValidationError as exc:
        where = {"invoice_id": "cbc:ID", "issuer_number": f"{_SELLER}/cac:PartyTaxScheme/cbc:"
                 "CompanyID", "seller_name": f"{_SELLER}/cac:PartyLegalEntity/cbc:RegistrationName",
                 "buyer_name": f"{_BUYER}/cac:PartyLegalEntity/cbc:RegistrationName"}
        return UblResult(None, tuple(
            _violation(where.get(str(e["loc"][0]), "Invoice"), "長すぎるか不正な値です。",
                       "the value is too long or invalid.") for e in exc.errors()),
            invoice_id[:100])
    return UblResult(fields, (), invoice_id)
