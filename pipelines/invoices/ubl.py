"""JP PINT digital invoices (デジタルインボイス): read a UBL 2.1 Invoice, hardened and strict.

The document comes from outside, so the parser never touches the network, never loads
a DTD, never expands an entity, and refuses any document that declares one (billion
laughs, external entities: OWASP XXE). Then the hub reads what it pays on, strictly:

- INV-2, the format: JP PINT (``urn:peppol:pint:billing-1@jp-1``, profile
  ``urn:peppol:bis:billing``), the invoice number, dates written ``YYYY-MM-DD`` and nothing
  else, the type code, JPY only, every amount ASCII digits with the currency's minor digits
  (JPY: none; no exponent, no full-width digits), and exactly one tax total.
- INV-5, the arithmetic behind PayableAmount, beyond what JP PINT asks: the tax breakdown
  keyed by tax category *and* rate, 10 % for S and 8 % for AA only, 0 % or no rate for E, Z,
  G and O; each breakdown's taxable amount recomputed from the lines and the document's
  allowances and charges; the tax of each rate rounded once; the totals down to
  PayableAmount.
- INV-1, the items of a qualified invoice (適格請求書): the issuer and its T-number, the
  transaction date (the delivery date, the invoice period or the lines' periods), what
  was delivered, the amounts and tax per rate, the buyer.

Every problem is a RuleViolation whose ``field`` is the element's path. Negative amounts
are read as such: a negative invoice is not an error of the format, the pipeline sends it to
the staff (INV-6).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree
from pydantic import ValidationError

from schemas.invoice import InvoiceFields, TaxSubtotal
from schemas.rejection import RuleViolation

__all__ = ["JP_PINT_CUSTOMIZATION", "JP_PINT_PROFILE", "NS", "UblResult", "parse_invoice",
           "read_jp_pint"]

JP_PINT_CUSTOMIZATION = "urn:peppol:pint:billing-1@jp-1"
JP_PINT_PROFILE = "urn:peppol:bis:billing"
NS = {
    "inv": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
CURRENCY_DIGITS = {"JPY": 0}
"""Minor digits of the currencies the hub pays in (ISO 4217): yen has none."""
RATES = {"S": Decimal(10), "AA": Decimal(8)}
"""The only taxable rates in Japan: 標準税率 10 % (S) and 軽減税率 8 % (AA)."""
UNTAXED = frozenset({"E", "Z", "G", "O"})
"""Exempt, zero-rated, export and not subject to tax: 0 % or no rate, no tax."""

_ROOT = f"{{{NS['inv']}}}Invoice"
_SELLER = "cac:AccountingSupplierParty/cac:Party"
_BUYER = "cac:AccountingCustomerParty/cac:Party"
_LMT = "cac:LegalMonetaryTotal"
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PERCENT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,4})?")
_NEXT_JA = "請求書作成ソフトでJP PINT（デジタルインボイス）を正しく出力し直して再送してください。"
_NEXT_EN = "Export the invoice again as valid JP PINT from your invoicing software and resend it."
_SUMS_JA = "明細・値引・追加料金・税額の計算を確認し、合計が合う請求書を再送してください。"
_SUMS_EN = ("Check the lines, allowances, charges and tax, and resend an invoice whose totals "
            "add up.")

TaxKey = tuple[str, Decimal | None]


@dataclass(frozen=True)
class UblResult:
    """What was read. ``fields`` is None when a violation was found, or when the document is
    not a positive invoice (``type_code`` other than 380, or a negative PayableAmount): then
    ``payable`` and ``issuer_number`` say what the staff need."""

    fields: InvoiceFields | None
    violations: tuple[RuleViolation, ...]
    invoice_id: str | None = None
    type_code: str | None = None
    payable: int | None = None
    issuer_number: str | None = None
    preceding_invoice_id: str | None = None


def _violation(element: str, ja: str, en: str, rule: str = "INV-2") -> RuleViolation:
    next_ja, next_en = (_SUMS_JA, _SUMS_EN) if rule == "INV-5" else (_NEXT_JA, _NEXT_EN)
    return RuleViolation(rule_id=rule, message_ja=f"{element}：{ja}",
                         message_en=f"{element}: {en}", next_step_ja=next_ja,
                         next_step_en=next_en, field=element)


def _parser() -> etree.XMLParser:
    # The text is ours in UTF-8 (the message carried it as str): a declared encoding is
    # ignored, so no exotic encoding can hide a DOCTYPE from the check before parsing.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=True,
                           collect_ids=False, encoding="utf-8")


def parse_invoice(xml: str) -> etree._Element | RuleViolation:
    """The document's root, hardened; or the INV-2 violation that refuses it."""
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


class _Reader:
    """Reads elements by path and collects what is missing or malformed."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.problems: list[RuleViolation] = []
        self.currency = "JPY"

    def add(self, element: str, ja: str, en: str, rule: str = "INV-2") -> None:
        self.problems.append(_violation(element, ja, en, rule))

    def text(self, path: str, *, at: etree._Element | None = None,
             where: str | None = None, required: bool = True) -> str | None:
        found = (self.root if at is None else at).find(path, NS)
        value = (found.text or "").strip() if found is not None else ""
        if not value:
            if required:
                self.add(where or path, "必須の要素がありません。",
                         "a required element is missing.")
            return None
        return value

    def date(self, path: str, *, at: etree._Element | None = None, where: str | None = None,
             required: bool = True) -> date | None:
        raw = self.text(path, at=at, where=where, required=required)
        if raw is None:
            return None
        try:
            if not _DATE.fullmatch(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            self.add(where or path, f"日付「{raw}」はYYYY-MM-DD形式（半角）ではありません。",
                     f"the date {raw!r} is not written YYYY-MM-DD.")
            return None

    def amount(self, path: str, *, at: etree._Element | None = None,
               where: str | None = None, required: bool = True) -> int | None:
        """A signed amount in whole units of the document's currency, written strictly."""
        label = where or path
        node = (self.root if at is None else at).find(path, NS)
        raw = self.text(path, at=at, where=label, required=required)
        if raw is None or node is None:
            return None
        if node.get("currencyID") != self.currency:
            self.add(label, f"通貨（currencyID）は{self.currency}にしてください。",
                     f"the currencyID must be {self.currency}.")
        digits = CURRENCY_DIGITS.get(self.currency, 0)
        pattern = r"-?[0-9]+" + (rf"(\.[0-9]{{1,{digits}}})?" if digits else "")
        if not re.fullmatch(pattern, raw):
            self.add(label,
                     f"金額「{raw}」は半角数字の整数（円単位、小数・指数表記なし）ではありません。",
                     f"the amount {raw!r} is not written in ASCII digits as whole yen "
                     "(no decimals, no exponent).")
            return None
        return int(raw)

    def percent(self, at: etree._Element, where: str) -> tuple[Decimal | None, bool]:
        """``(rate, readable)``: the rate (None when absent) and whether it could be read."""
        raw = self.text("cbc:Percent", at=at, required=False)
        if raw is None:
            return None, True
        if not _PERCENT.fullmatch(raw):
            self.add(f"{where}/cbc:Percent", f"税率「{raw}」が読めません。",
                     f"the rate {raw!r} is unreadable.")
            return None, False
        return Decimal(raw), True


def _seller_number(r: _Reader) -> str | None:
    path = f"{_SELLER}/cac:PartyTaxScheme/cbc:CompanyID"
    number = r.text(path)
    if number is None:
        return None
    endpoint = r.root.find(f"{_SELLER}/cbc:EndpointID", NS)
    if (endpoint is not None and endpoint.get("schemeID") == "0188"
            and (endpoint.text or "").strip() != number.removeprefix("T")):
        r.add(f"{_SELLER}/cbc:EndpointID",
              f"法人番号（{endpoint.text}）が登録番号（{number}）と一致しません。",
              f"the corporate number ({endpoint.text}) does not match the registration number "
              f"({number}).")
    return number


def _category(r: _Reader, node: etree._Element | None, where: str) -> TaxKey | None:
    """The tax category and rate of a line, an allowance or charge, or a breakdown (INV-5)."""
    if node is None:
        r.add(where, "税区分がありません。", "the tax category is missing.")
        return None
    code = r.text("cbc:ID", at=node, where=f"{where}/cbc:ID")
    rate, readable = r.percent(node, where)
    if code is None or not readable:
        return None
    if code in RATES:
        if rate != RATES[code]:
            shown = "なし" if rate is None else f"{rate}%"
            r.add(f"{where}/cbc:Percent",
                  f"税区分{code}の税率は{RATES[code]}%です（記載：{shown}）。日本の課税取引の税率は"
                  "標準税率10%（S）と軽減税率8%（AA）だけです。",
                  f"category {code} is taxed at {RATES[code]} % (stated: "
                  f"{'none' if rate is None else f'{rate} %'}); Japan's taxable rates are "
                  "10 % (S) and 8 % (AA) only.", "INV-5")
            return None
        rate = RATES[code]
    elif code in UNTAXED:
        if rate not in (None, Decimal(0)):
            r.add(f"{where}/cbc:Percent",
                  f"税区分{code}（非課税・免税・輸出・不課税）の税率は0%か記載なしです（記載：{rate}%）。",
                  f"category {code} (exempt, zero-rated, export, not subject to tax) has a 0 % "
                  f"rate or none (stated: {rate} %).", "INV-5")
            return None
        rate = None if code == "O" else Decimal(0)
    else:
        r.add(f"{where}/cbc:ID",
              f"税区分「{code}」は日本の請求書では使えません（S, AA, E, Z, G, O）。",
              f"the tax category {code!r} is not used in Japan (S, AA, E, Z, G, O).", "INV-5")
        return None
    return code, rate


def _lines(r: _Reader) -> tuple[dict[TaxKey, int], int | None, list[str], list[date], list[date]]:
    """Line amounts per tax key, their sum, the item names, the lines' period starts and ends."""
    per_key: dict[TaxKey, int] = defaultdict(int)
    total: int | None = 0
    names: list[str] = []
    starts: list[date] = []
    ends: list[date] = []
    lines = r.root.findall("cac:InvoiceLine", NS)
    if not lines:
        r.add("cac:InvoiceLine", "明細行がありません。", "the invoice has no lines.")
        return per_key, None, names, starts, ends
    for n, line in enumerate(lines, start=1):
        where = f"cac:InvoiceLine[{n}]"
        amount = r.amount("cbc:LineExtensionAmount", at=line,
                          where=f"{where}/cbc:LineExtensionAmount")
        name = r.text("cac:Item/cbc:Name", at=line, where=f"{where}/cac:Item/cbc:Name")
        if name:
            names.append(name)
        key = _category(r, line.find("cac:Item/cac:ClassifiedTaxCategory", NS),
                        f"{where}/cac:Item/cac:ClassifiedTaxCategory")
        period = line.find("cac:InvoicePeriod", NS)
        if period is not None:
            start = r.date("cbc:StartDate", at=period, required=False,
                           where=f"{where}/cac:InvoicePeriod/cbc:StartDate")
            end = r.date("cbc:EndDate", at=period, required=False,
                         where=f"{where}/cac:InvoicePeriod/cbc:EndDate")
            starts.extend([start] if start else [])
            ends.extend([end] if end else [])
        if amount is None or total is None:
            total = None
            continue
        total += amount
        if key is not None:
            per_key[key] += amount
    return per_key, total, names, starts, ends


def _allowances(r: _Reader) -> tuple[dict[TaxKey, int], int, int]:
    """Document-level charges less allowances per tax key; the allowance and charge totals."""
    per_key: dict[TaxKey, int] = defaultdict(int)
    allowances = charges = 0
    for n, node in enumerate(r.root.findall("cac:AllowanceCharge", NS), start=1):
        where = f"cac:AllowanceCharge[{n}]"
        indicator = r.text("cbc:ChargeIndicator", at=node, where=f"{where}/cbc:ChargeIndicator")
        amount = r.amount("cbc:Amount", at=node, where=f"{where}/cbc:Amount")
        key = _category(r, node.find("cac:TaxCategory", NS), f"{where}/cac:TaxCategory")
        if indicator not in ("true", "false"):
            if indicator is not None:
                r.add(f"{where}/cbc:ChargeIndicator", "true か false で記載してください。",
                      "write true or false.")
            continue
        if amount is None:
            continue
        signed = amount if indicator == "true" else -amount
        if indicator == "true":
            charges += amount
        else:
            allowances += amount
        if key is not None:
            per_key[key] += signed
    return per_key, allowances, charges


Breakdown = dict[TaxKey, tuple[int, int]]


def _tax(r: _Reader) -> tuple[Breakdown, int | None]:
    """The breakdown per category and rate, signed (taxable, tax), and the stated tax total
    (exactly one TaxTotal)."""
    totals = r.root.findall("cac:TaxTotal", NS)
    if not totals:
        r.add("cac:TaxTotal", "税率ごとの消費税額がありません。",
              "the tax totals per rate are missing.")
        return {}, None
    if len(totals) > 1:
        r.add("cac:TaxTotal", f"消費税額の合計（TaxTotal）が{len(totals)}個あります。円建ての"
              "請求書には1個だけ記載してください。",
              f"{len(totals)} tax totals: a JPY invoice states exactly one.")
    total = totals[0]
    found: Breakdown = {}
    for n, node in enumerate(total.findall("cac:TaxSubtotal", NS), start=1):
        where = f"cac:TaxTotal/cac:TaxSubtotal[{n}]"
        taxable = r.amount("cbc:TaxableAmount", at=node, where=f"{where}/cbc:TaxableAmount")
        tax = r.amount("cbc:TaxAmount", at=node, where=f"{where}/cbc:TaxAmount")
        key = _category(r, node.find("cac:TaxCategory", NS), f"{where}/cac:TaxCategory")
        if key is None or taxable is None or tax is None:
            continue
        code, rate = key
        shown = f"{rate}%" if rate is not None else "なし"
        if key in found:
            r.add(where, f"税区分{code}・税率{shown}の内訳が複数あります。",
                  f"category {code} at rate {shown.replace('なし', 'none')} is listed more "
                  "than once.", "INV-5")
            continue
        exact = Decimal(taxable) * (rate or 0) / 100
        # 端数処理は税率ごとに1回: any rounding of the exact tax is accepted, nothing more.
        if abs(Decimal(tax) - exact) >= 1:
            r.add(f"{where}/cbc:TaxAmount",
                  f"税区分{code}（{rate or 0}%）の消費税額{tax:,}円が"
                  f"課税標準額{taxable:,}円と合いません。",
                  f"the category {code} ({rate or 0} %) tax of JPY {tax:,} does not fit the "
                  f"taxable JPY {taxable:,}.", "INV-5")
        if max(abs(taxable), abs(tax)) > 10**13:
            r.add(where, "金額が大きすぎます。", "the amount is too large.")
            continue
        found[key] = (taxable, tax)
    if not found and not r.problems:
        r.add("cac:TaxTotal/cac:TaxSubtotal", "税率ごとの内訳がありません。",
              "no breakdown per tax rate.")
    stated = r.amount("cbc:TaxAmount", at=total, where="cac:TaxTotal/cbc:TaxAmount")
    return found, stated


def _arithmetic(r: _Reader, lines: dict[TaxKey, int], line_total: int | None, *,
                doc: dict[TaxKey, int], allowances: int, charges: int,
                breakdown: Breakdown, stated_tax: int | None) -> int | None:
    """INV-5: the breakdown from the lines, the totals down to PayableAmount (signed)."""
    if line_total is not None and not r.problems:
        for key in sorted(set(lines) | set(doc) | set(breakdown), key=str):
            expected = lines.get(key, 0) + doc.get(key, 0)
            code, rate = key
            label = f"{code} {rate if rate is not None else '-'}%"
            if key not in breakdown:
                r.add("cac:TaxTotal", f"税区分{label}の明細がありますが、その内訳がありません。",
                      f"lines in category {label} but no breakdown for it.", "INV-5")
            elif breakdown[key][0] != expected:
                r.add("cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount",
                      f"税区分{label}の課税標準額{breakdown[key][0]:,}円が明細と値引・追加料金から"
                      f"計算した{expected:,}円と一致しません。",
                      f"the taxable amount of category {label}, JPY {breakdown[key][0]:,}, is "
                      f"not JPY {expected:,} computed from the lines, allowances and charges.",
                      "INV-5")
    tax = sum(t for _, t in breakdown.values())
    if stated_tax is not None and breakdown and stated_tax != tax:
        r.add("cac:TaxTotal/cbc:TaxAmount", "消費税額の合計が税率ごとの内訳の合計と一致しません。",
              "the tax total is not the sum of the breakdown's taxes.", "INV-5")
    line_sum = r.amount(f"{_LMT}/cbc:LineExtensionAmount")
    exclusive = r.amount(f"{_LMT}/cbc:TaxExclusiveAmount")
    inclusive = r.amount(f"{_LMT}/cbc:TaxInclusiveAmount")
    payable = r.amount(f"{_LMT}/cbc:PayableAmount")
    allowance_total = r.amount(f"{_LMT}/cbc:AllowanceTotalAmount", required=bool(allowances))
    charge_total = r.amount(f"{_LMT}/cbc:ChargeTotalAmount", required=bool(charges))
    prepaid = r.amount(f"{_LMT}/cbc:PrepaidAmount", required=False) or 0
    rounding = r.amount(f"{_LMT}/cbc:PayableRoundingAmount", required=False) or 0
    checks = (
        (line_sum, line_total, "LineExtensionAmount", "明細金額の合計", "the sum of the lines"),
        (allowance_total, allowances, "AllowanceTotalAmount", "値引の合計",
         "the sum of the document's allowances"),
        (charge_total, charges, "ChargeTotalAmount", "追加料金の合計",
         "the sum of the document's charges"),
        (exclusive, None if line_sum is None else line_sum - allowances + charges,
         "TaxExclusiveAmount", "明細金額の合計－値引＋追加料金",
         "the lines less allowances plus charges"),
        (inclusive, None if exclusive is None or stated_tax is None else exclusive + stated_tax,
         "TaxInclusiveAmount", "税抜金額＋消費税額", "the amount without tax plus the tax"),
        (payable, None if inclusive is None else inclusive - prepaid + rounding,
         "PayableAmount", "税込金額－前払額＋端数調整額",
         "the amount with tax less prepaid plus rounding"),
    )
    for stated, computed, element, ja, en in checks:
        if stated is not None and computed is not None and stated != computed:
            r.add(f"{_LMT}/cbc:{element}",
                  f"記載の{stated:,}円が{ja}（{computed:,}円）と一致しません。",
                  f"JPY {stated:,} is not {en} (JPY {computed:,}).", "INV-5")
    return payable


def _transaction(r: _Reader, starts: list[date], ends: list[date]) -> tuple[date | None,
                                                                            date | None]:
    """取引年月日 (INV-1): the delivery date, else the invoice period, else the lines' periods."""
    delivered = r.date("cac:Delivery/cbc:ActualDeliveryDate", required=False)
    period = r.root.find("cac:InvoicePeriod", NS)
    start = end = None
    if period is not None:
        start = r.date("cbc:StartDate", at=period, required=False,
                       where="cac:InvoicePeriod/cbc:StartDate")
        end = r.date("cbc:EndDate", at=period, required=False,
                     where="cac:InvoicePeriod/cbc:EndDate")
    if delivered is not None:
        return delivered, None
    if end is not None:
        return end, start
    if ends:
        return max(ends), min(starts) if starts else None
    r.add("cac:Delivery/cbc:ActualDeliveryDate",
          "取引年月日（納品日、請求期間、明細の期間のいずれか）がありません。適格請求書の記載事項です。",
          "no transaction date (delivery date, invoice period or line period): a qualified "
          "invoice must state it.", "INV-1")
    return None, None


def read_jp_pint(xml: str) -> UblResult:
    """INV-1, INV-2, INV-5 on one document: its essentials, or every problem found."""
    root = parse_invoice(xml)
    if isinstance(root, RuleViolation):
        return UblResult(None, (root,))
    return read_root(root)


def read_root(root: etree._Element) -> UblResult:
    """:func:`read_jp_pint` on a document already parsed by :func:`parse_invoice`."""
    r = _Reader(root)
    customization = r.text("cbc:CustomizationID")
    if customization is not None and customization != JP_PINT_CUSTOMIZATION:
        r.add("cbc:CustomizationID", f"JP PINT（{JP_PINT_CUSTOMIZATION}）ではありません。",
              f"not JP PINT ({JP_PINT_CUSTOMIZATION}).")
    profile = r.text("cbc:ProfileID")
    if profile is not None and profile != JP_PINT_PROFILE:
        r.add("cbc:ProfileID", f"業務プロセスが請求（{JP_PINT_PROFILE}）ではありません。",
              f"the business process is not billing ({JP_PINT_PROFILE}).")
    invoice_id = r.text("cbc:ID")
    issue_date = r.date("cbc:IssueDate")
    due_date = r.date("cbc:DueDate", required=False)
    type_code = r.text("cbc:InvoiceTypeCode")
    if type_code is not None and not re.fullmatch(r"[0-9]{3}", type_code):
        r.add("cbc:InvoiceTypeCode", f"請求書の種類コード「{type_code}」が読めません。",
              f"the type code {type_code!r} is unreadable.")
    currency = r.text("cbc:DocumentCurrencyCode")
    if currency is not None and currency != "JPY":
        r.add("cbc:DocumentCurrencyCode", "通貨はJPYにしてください。", "the currency must be JPY.")
    tax_currency = r.text("cbc:TaxCurrencyCode", required=False)
    if tax_currency not in (None, "JPY"):
        r.add("cbc:TaxCurrencyCode", "税額の通貨はJPYにしてください。",
              "the tax currency must be JPY.")
    preceding = r.text("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID",
                       required=False)
    seller_number = _seller_number(r)
    seller = r.text(f"{_SELLER}/cac:PartyLegalEntity/cbc:RegistrationName")
    buyer = r.text(f"{_BUYER}/cac:PartyLegalEntity/cbc:RegistrationName")
    lines, line_total, names, starts, ends = _lines(r)
    doc, allowances, charges = _allowances(r)
    breakdown, stated_tax = _tax(r)
    payable = _arithmetic(r, lines, line_total, doc=doc, allowances=allowances, charges=charges,
                          breakdown=breakdown, stated_tax=stated_tax)
    transaction, transaction_start = _transaction(r, starts, ends)
    short_id = invoice_id[:100] if invoice_id else None
    if r.problems:
        return UblResult(None, tuple(r.problems), short_id, type_code, payable, seller_number,
                         preceding)
    if not (invoice_id and issue_date and seller_number and seller and buyer and type_code) \
            or payable is None:
        raise AssertionError("a missing element was not reported")  # _Reader reports each one
    if type_code != "380" or payable < 0 or any(
            taxable < 0 or tax < 0 for taxable, tax in breakdown.values()):
        return UblResult(None, (), short_id, type_code, payable, seller_number, preceding)
    subtotals = tuple(TaxSubtotal(rate_percent=None if rate is None else int(rate),
                                  category=code, taxable_amount=taxable, tax_amount=tax)
                      for (code, rate), (taxable, tax) in breakdown.items())
    description = "、".join(names)
    try:
        fields = InvoiceFields(
            invoice_id=invoice_id, issue_date=issue_date, issuer_number=seller_number,
            seller_name=seller, buyer_name=buyer, tax_subtotals=subtotals,
            payable_amount=payable, transaction_date=transaction,
            transaction_start=transaction_start, due_date=due_date,
            description=description[:199] + "…" if len(description) > 200 else description,
            preceding_invoice_id=preceding)
    except ValidationError as exc:
        where = {"invoice_id": "cbc:ID", "issuer_number": f"{_SELLER}/cac:PartyTaxScheme/cbc:"
                 "CompanyID", "seller_name": f"{_SELLER}/cac:PartyLegalEntity/cbc:RegistrationName",
                 "buyer_name": f"{_BUYER}/cac:PartyLegalEntity/cbc:RegistrationName",
                 "preceding_invoice_id": "cac:BillingReference/cac:InvoiceDocumentReference/"
                 "cbc:ID", "payable_amount": f"{_LMT}/cbc:PayableAmount"}
        return UblResult(None, tuple(
            _violation(where.get(str(e["loc"][0]), "Invoice"), "長すぎるか不正な値です。",
                       "the value is too long or invalid.") for e in exc.errors()),
            short_id, type_code, payable, seller_number, preceding)
    return UblResult(fields, (), invoice_id, type_code, payable, seller_number, preceding)
