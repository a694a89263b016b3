"""The pure invoice rules, table-driven per rule ID: INV-1 (issuer number T + 法人番号 with
its check digit, registered first), INV-2 (a JP PINT document goes through the same
checks), INV-3 (accepted → one ERP payment request; the same invoice never twice)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipelines.invoices.rules import business_key, decide_invoice, issuer_violation
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceFields,
    InvoiceFormat,
    InvoiceRejected,
    InvoiceSubmitted,
    TaxSubtotal,
)
from schemas.topics import Topics

SAMPLE = (Path(__file__).parent.parent / "data" / "jp_pint_invoice.xml").read_text("utf-8")
T_NUMBER = "T9234567890123"  # 法人番号 9234567890123: check digit 9 (stdnum.jp.cn)
CONTRACTOR = "1234567890123456"
REGISTERED = frozenset({T_NUMBER})


def fields(**change: Any) -> InvoiceFields:
    data: dict[str, Any] = {
        "invoice_id": "2023-0042", "issue_date": date(2023, 10, 2), "issuer_number": T_NUMBER,
        "seller_name": "〇〇建設株式会社", "buyer_name": "足利市",
        "tax_subtotals": (TaxSubtotal(rate_percent=10, taxable_amount=1_000_000,
                                      tax_amount=100_000),),
        "payable_amount": 1_100_000, "transaction_date": date(2023, 9, 30),
        "description": "●●●●工事 完成払"}
    data.update(change)
    return InvoiceFields(**data)


def submitted(**change: Any) -> InvoiceSubmitted:
    data: dict[str, Any] = {"case_id": "R4-KOJI-0042", "contract_number": "R4-0042",
                            "contractor_id": CONTRACTOR, "fields": fields()}
    data.update(change)
    return InvoiceSubmitted(**data)


def decide(cmd: InvoiceSubmitted, registered: frozenset[str] | None = REGISTERED,
           before: frozenset[str] = frozenset()) -> Any:
    return decide_invoice(cmd, registered=registered, accepted_before=before,
                          entity="ashikaga-city")


def rejected(decision: Any) -> InvoiceRejected:
    ((topic, payload),) = decision.emits
    assert topic == Topics.INVOICE_EVENTS
    assert isinstance(payload, InvoiceRejected)
    assert decision.accepted is None
    return payload


# --- INV-1 ------------------------------------------------------------------------------

def test_inv1_registered_number_with_a_valid_check_digit_is_accepted() -> None:
    assert issuer_violation(T_NUMBER, REGISTERED) is None
    decision = decide(submitted())
    assert isinstance(decision.accepted, InvoiceAccepted)
    assert decision.accepted.issuer_number == T_NUMBER


@pytest.mark.parametrize(("number", "registered", "says"), [
    ("9234567890123", REGISTERED, "T＋13桁"),           # no T
    ("T923456789012", REGISTERED, "T＋13桁"),           # 12 digits
    ("Ｔ９２３４５６７８９０１２３", REGISTERED, "全角"),  # full-width
    ("T8234567890123", frozenset({"T8234567890123"}), "チェックデジット"),
    (T_NUMBER, None, "企業ID"),                          # contractor not registered at all
    (T_NUMBER, frozenset({"T5835678256246"}), "利用者情報に登録されていません"),
    (T_NUMBER, frozenset(), "利用者情報に登録されていません"),
])
def test_inv1_rejections(number: str, registered: frozenset[str] | None, says: str) -> None:
    violation = rejected(decide(submitted(fields=fields(issuer_number=number)),
                                registered)).violations[0]
    assert (violation.rule_id, violation.field) == ("INV-1", "issuer_number")
    assert says in violation.message_ja
    assert violation.message_en
    assert violation.next_step_ja
    assert violation.next_step_en


# --- INV-2 ------------------------------------------------------------------------------

def test_inv2_jp_pint_document_is_accepted_like_structured_fields() -> None:
    decision = decide(submitted(fields=None, ubl_xml=SAMPLE))
    accepted = decision.accepted
    assert accepted is not None
    assert (accepted.invoice_id, accepted.payable_amount, accepted.source_format) == (
        "INV-2023-0930-001", 30_000_000, InvoiceFormat.JP_PINT)


def test_inv2_a_broken_document_is_rejected_with_its_element() -> None:
    xml = SAMPLE.replace("<cbc:IssueDate>2023-10-02</cbc:IssueDate>", "")
    violations = rejected(decide(submitted(fields=None, ubl_xml=xml))).violations
    assert ("INV-2", "cbc:IssueDate") in [(v.rule_id, v.field) for v in violations]
    # The official rules saw it first (INV-4, ibr-??: the issue date is mandatory).
    assert violations[0].rule_id == "INV-4"
    assert violations[0].flag == "fatal"


def test_inv2_document_with_an_unregistered_number_is_still_inv1() -> None:
    decision = decide(submitted(fields=None, ubl_xml=SAMPLE), frozenset())
    assert [v.rule_id for v in rejected(decision).violations] == ["INV-1"]
    assert rejected(decision).invoice_id == "INV-2023-0930-001"


def test_an_invoice_has_fields_or_a_document_exactly() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        submitted(ubl_xml=SAMPLE)
    with pytest.raises(ValidationError, match="exactly one"):
        submitted(fields=None)


# --- INV-3 ------------------------------------------------------------------------------

def test_inv3_accepted_invoice_becomes_one_erp_payment_request() -> None:
    decision = decide(submitted())
    topics = [t for t, _ in decision.emits]
    assert topics == [Topics.INVOICE_EVENTS, Topics.ERP_COMMANDS]
    erp = decision.emits[1][1]
    assert isinstance(erp, ErpRegistrationRequested)
    assert (erp.kind, erp.invoice_number, erp.amount_jpy, erp.request_date) == (
        ErpRegistrationKind.PAYMENT, T_NUMBER, 1_100_000, date(2023, 10, 2))
    assert erp.business_key == decision.accepted.erp_business_key == business_key(
        "ashikaga-city", "R4-0042", CONTRACTOR, "2023-0042")


def test_inv3_the_same_invoice_number_is_never_paid_twice() -> None:
    violation = rejected(decide(submitted(), before=frozenset({"2023-0042"}))).violations[0]
    assert (violation.rule_id, violation.field) == ("INV-3", "invoice_id")
    assert "既に受理" in violation.message_ja


def test_inv3_a_zero_invoice_is_not_a_payment() -> None:
    zero = fields(payable_amount=0, tax_subtotals=(TaxSubtotal(rate_percent=10,
                                                               taxable_amount=0,
                                                               tax_amount=0),))
    assert rejected(decide(submitted(fields=zero))).violations[0].rule_id == "INV-3"


def test_business_keys_fit_the_erp_and_differ_per_invoice() -> None:
    a = business_key("ashikaga-city", "R4-0042", CONTRACTOR, "請求-0001")
    b = business_key("ashikaga-city", "R4-0042", CONTRACTOR, "請求-0002")
    assert a != b
    assert len(a) <= 80
    ErpRegistrationRequested(kind=ErpRegistrationKind.PAYMENT, business_key=a,
                             contract_number="R4-0042", contractor_id=CONTRACTOR,
                             contractor_name="x", amount_jpy=1, request_date=date(2023, 1, 1),
                             invoice_number=T_NUMBER)


@pytest.mark.parametrize(("subtotals", "field"), [
    ((TaxSubtotal(rate_percent=10, taxable_amount=1_000_000, tax_amount=99_000),),
     "tax_subtotals[0]"),
    ((TaxSubtotal(rate_percent=10, taxable_amount=500_000, tax_amount=50_000),
      TaxSubtotal(rate_percent=10, taxable_amount=500_000, tax_amount=50_000)), "tax_subtotals"),
])
def test_inv5_structured_tax_must_be_stated_once_per_rate(subtotals: tuple[TaxSubtotal, ...],
                                                         field: str) -> None:
    violations = rejected(decide(submitted(fields=fields(tax_subtotals=subtotals)))).violations
    assert [(v.rule_id, v.field) for v in violations] == [("INV-5", field)]


def test_inv1_rounding_once_per_rate_is_fine() -> None:
    """8 % of 10,005 yen is 800.4: 800 (truncated) and 801 (rounded up) are both rounding."""
    for tax in (800, 801):
        sub = (TaxSubtotal(rate_percent=8, category="AA", taxable_amount=10_005,
                           tax_amount=tax),)
        assert decide(submitted(fields=fields(tax_subtotals=sub))).accepted is not None


def test_inv5_structured_breakdown_is_keyed_by_category_and_rate() -> None:
    """Exempt 0 %, export 0 % and not taxable (no rate) beside 10 %: four breakdowns."""
    subs = (TaxSubtotal(rate_percent=10, taxable_amount=1_000_000, tax_amount=100_000),
            TaxSubtotal(rate_percent=0, category="E", taxable_amount=5_000, tax_amount=0),
            TaxSubtotal(rate_percent=0, category="G", taxable_amount=7_000, tax_amount=0),
            TaxSubtotal(rate_percent=None, category="O", taxable_amount=9_000, tax_amount=0))
    assert decide(submitted(fields=fields(tax_subtotals=subs,
                                          payable_amount=1_121_000))).accepted is not None


@pytest.mark.parametrize(("sub", "says"), [
    (TaxSubtotal(rate_percent=5, taxable_amount=1_000_000, tax_amount=50_000), "5%"),
    (TaxSubtotal(rate_percent=10, category="AA", taxable_amount=1_000, tax_amount=100), "AA"),
    (TaxSubtotal(rate_percent=8, category="E", taxable_amount=1_000, tax_amount=80), "E"),
    (TaxSubtotal(rate_percent=None, taxable_amount=1_000, tax_amount=0), "なし"),
    (TaxSubtotal(rate_percent=0, category="E", taxable_amount=1_000, tax_amount=100), "0%"),
])
def test_inv5_structured_rates_outside_japans(sub: TaxSubtotal, says: str) -> None:
    (violation,) = rejected(decide(submitted(fields=fields(tax_subtotals=(sub,))))).violations
    assert (violation.rule_id, violation.field) == ("INV-5", "tax_subtotals[0]")
    assert says in violation.message_ja


def test_inv1_structured_invoice_needs_transaction_date_and_description() -> None:
    bare = fields(transaction_date=None, description=" ")
    violations = rejected(decide(submitted(fields=bare))).violations
    assert [(v.rule_id, v.field) for v in violations] == [("INV-1", "transaction_date"),
                                                           ("INV-1", "description")]
