"""One mutation of one valid invoice per check (INV-2, INV-4, INV-5, INV-6, and the two
valid invoices the hub used to refuse). The base: OpenPeppol's JP PINT 1.1.3 Example1
(minimum) issued under a valid, registered number: PayableAmount ¥281,240 = 10 % on
¥252,500 + exempt ¥3,490. Each test names what is refused, by which rule, and at which
element; an invoice that is refused never reaches the ERP."""

from __future__ import annotations

import copy
from typing import Any

from pipelines.invoices.gate import UNEVALUABLE
from pipelines.invoices.rules import InvoiceStatus, PriorInvoice, decide_invoice
from pipelines.invoices.ubl import NS
from schemas.erp import ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceNeedsStaffReview,
    InvoiceRejected,
    InvoiceSubmitted,
)
from schemas.topics import Topics
from tests.unit.invoice_docs import VALID_T, Doc, example, with_valid_number

BASE = with_valid_number(example("Example1-minimum"))
LMT = "cac:LegalMonetaryTotal"


def decide(xml: str, before: dict[str, PriorInvoice] | None = None) -> Any:
    cmd = InvoiceSubmitted(case_id="R5-KOJI-0001", contract_number="R5-0001",
                           contractor_id="1234567890123456", ubl_xml=xml)
    return decide_invoice(cmd, registered=frozenset({VALID_T}), accepted_before=before or {},
                          entity="ashikaga-city")


def refused(xml: str, before: dict[str, PriorInvoice] | None = None) -> InvoiceRejected:
    decision = decide(xml, before)
    assert [t for t, _ in decision.emits] == [Topics.INVOICE_EVENTS]  # no ERP payment
    event = decision.emits[0][1]
    assert isinstance(event, InvoiceRejected)
    for v in event.violations:
        assert v.message_ja
        assert v.message_en
        assert v.next_step_ja
        assert v.next_step_en
    return event


def found(event: InvoiceRejected) -> set[tuple[str, str | None]]:
    """(rule or official rule, field) of each violation."""
    return {(v.reference or v.rule_id, v.field) for v in event.violations}


def paid(xml: str) -> tuple[InvoiceAccepted, ErpRegistrationRequested]:
    decision = decide(xml)
    accepted, erp = (p for _, p in decision.emits)
    assert isinstance(accepted, InvoiceAccepted)
    assert isinstance(erp, ErpRegistrationRequested)
    return accepted, erp


def test_the_base_invoice_is_paid() -> None:
    accepted, erp = paid(BASE)
    assert accepted.payable_amount == erp.amount_jpy == 281_240


def test_lines_that_do_not_add_up_to_line_extension_amount() -> None:
    event = refused(Doc(BASE).set("cac:InvoiceLine[1]/cbc:LineExtensionAmount", "260000").xml())
    assert {("ibr-co-10", None), ("INV-5", f"{LMT}/cbc:LineExtensionAmount"),
            ("INV-5", "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxableAmount")} <= {
        (r, f if r.startswith("INV") else None) for r, f in found(event)}


def test_totals_inflated_by_100000_yen() -> None:
    event = refused(Doc(BASE).totals(TaxExclusiveAmount=355_990, TaxInclusiveAmount=381_240,
                                     PayableAmount=381_240).xml())
    rules = {r for r, _ in found(event)}
    assert {"ibr-co-13", "INV-5"} <= rules
    assert ("INV-5", f"{LMT}/cbc:TaxExclusiveAmount") in found(event)


def test_totals_removed() -> None:
    event = refused(Doc(BASE).remove(f"{LMT}/cbc:TaxExclusiveAmount")
                    .remove(f"{LMT}/cbc:TaxInclusiveAmount").xml())
    assert {("INV-2", f"{LMT}/cbc:TaxExclusiveAmount"),
            ("INV-2", f"{LMT}/cbc:TaxInclusiveAmount")} <= found(event)
    assert {"ibr-013", "ibr-014"} <= {r for r, _ in found(event)}


def test_a_credit_note_type_381_is_not_paid_but_sent_to_the_staff() -> None:
    """JP PINT's rules refuse 381 in an Invoice document (ibr-cl-01, aligned-ibrp-cl-02-jp);
    the credit is real all the same: a staff task with those findings, never a payment."""
    decision = decide(Doc(BASE).set("cbc:InvoiceTypeCode", "381").xml())
    (topic, review), = decision.emits
    assert topic == Topics.INVOICE_EVENTS
    assert isinstance(review, InvoiceNeedsStaffReview)
    assert (review.type_code, review.payable_amount) == ("381", 281_240)
    assert [v.rule_id for v in review.reasons] == ["INV-6"]
    assert {v.reference for v in review.warnings} == {"ibr-cl-01", "aligned-ibrp-cl-02-jp"}


def test_another_type_is_refused_by_the_official_rules() -> None:
    event = refused(Doc(BASE).set("cbc:InvoiceTypeCode", "383").xml())
    assert "aligned-ibrp-cl-02-jp" in {r for r, _ in found(event)}


def test_wrong_profile() -> None:
    event = refused(Doc(BASE).set("cbc:ProfileID", "urn:peppol:bis:selfbilling").xml())
    assert ("INV-2", "cbc:ProfileID") in found(event)


def test_compact_date() -> None:
    event = refused(Doc(BASE).set("cbc:IssueDate", "20231024").xml())
    assert ("INV-2", "cbc:IssueDate") in found(event)
    assert "YYYY-MM-DD" in next(v.message_en for v in event.violations if v.rule_id == "INV-2")


def test_exponent_amount() -> None:
    event = refused(Doc(BASE).totals(PayableAmount="2.81240E5").xml())
    assert ("INV-2", f"{LMT}/cbc:PayableAmount") in found(event)
    assert UNEVALUABLE in {r for r, _ in found(event)}  # Saxon cannot read it either


def test_full_width_amount() -> None:
    event = refused(Doc(BASE).set(f"{LMT}/cbc:PayableAmount", "２８１２４０").xml())
    assert ("INV-2", f"{LMT}/cbc:PayableAmount") in found(event)


def test_two_tax_totals() -> None:
    doc = Doc(BASE)
    total = doc.find("cac:TaxTotal")
    second = copy.deepcopy(total)
    for sub in second.findall("cac:TaxSubtotal", NS):
        second.remove(sub)
    amount = second.find("cbc:TaxAmount", NS)
    assert amount is not None
    amount.text = "99999"
    total.addnext(second)
    event = refused(doc.xml())
    assert ("INV-2", "cac:TaxTotal") in found(event)


def test_exempt_and_export_at_0_percent_are_two_breakdowns() -> None:
    """E 0 % and G 0 %: the breakdown is keyed by category and rate, so this is valid."""
    xml = (Doc(BASE).add_line(10_000, "G", "0", "輸出用部品").add_subtotal(10_000, 0, "G", "0")
           .totals(LineExtensionAmount=265_990, TaxExclusiveAmount=265_990,
                   TaxInclusiveAmount=291_240, PayableAmount=291_240).xml())
    accepted, erp = paid(xml)
    assert [(s.category, s.rate_percent) for s in accepted.tax_subtotals] == [
        ("S", 10), ("E", 0), ("G", 0)]
    assert erp.amount_jpy == 291_240


def test_a_line_not_subject_to_tax_has_no_rate() -> None:
    """Category O carries no rate: valid, and its breakdown has none either."""
    xml = (Doc(BASE).add_line(70_000, "O", None, "オフィスチェア（不課税）")
           .add_subtotal(70_000, 0, "O", None)
           .totals(LineExtensionAmount=325_990, TaxExclusiveAmount=325_990,
                   TaxInclusiveAmount=351_240, PayableAmount=351_240).xml())
    accepted, _ = paid(xml)
    assert (accepted.tax_subtotals[-1].category, accepted.tax_subtotals[-1].rate_percent) == (
        "O", None)


def test_a_5_percent_rate() -> None:
    doc = Doc(BASE)
    for path in ("cac:InvoiceLine[1]/cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
                 "cac:InvoiceLine[2]/cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
                 "cac:TaxTotal/cac:TaxSubtotal[1]/cac:TaxCategory/cbc:Percent"):
        doc.set(path, "5")
    doc.set("cac:TaxTotal/cac:TaxSubtotal[1]/cbc:TaxAmount", "12625")
    doc.set("cac:TaxTotal/cbc:TaxAmount", "12625").totals(TaxInclusiveAmount=268_615,
                                                          PayableAmount=268_615)
    event = refused(doc.xml())
    assert ("INV-5", "cac:TaxTotal/cac:TaxSubtotal[1]/cac:TaxCategory/cbc:Percent") in found(
        event)
    assert any("10 % (S) and 8 % (AA) only" in v.message_en for v in event.violations)


def test_a_correction_of_a_paid_invoice() -> None:
    doc = Doc(BASE)
    ref = doc.find("cac:InvoicePeriod")
    billing = copy.deepcopy(Doc(with_valid_number(example("Example6-CorrInv")))
                            .find("cac:BillingReference"))
    ref.addnext(billing)
    paid_before = {"123": PriorInvoice(InvoiceStatus.PAID, "R5-0001:invoice:x")}
    event = refused(doc.xml(), paid_before)
    assert found(event) == {("INV-6", "preceding_invoice_id")}
    unpaid = {"123": PriorInvoice(InvoiceStatus.REQUESTED, "R5-0001:invoice:x")}
    decision = decide(doc.xml(), unpaid)
    assert decision.accepted.replaces_invoice_id == "123"
    assert decision.emits[1][1].replaces_business_key == "R5-0001:invoice:x"
    replaced = {"123": PriorInvoice(InvoiceStatus.REPLACED, "R5-0001:invoice:x", "124")}
    assert "124" in refused(doc.xml(), replaced).violations[0].message_en


def test_a_negative_amount_is_not_called_not_whole_yen() -> None:
    """A negative invoice is read as such and goes to the staff (INV-6); only a real format
    problem says the amount is not whole yen."""
    doc = Doc(with_valid_number(example("Example7-Return.Quan.ItPr")))
    decision = decide(doc.xml())
    (_, review), = decision.emits
    assert isinstance(review, InvoiceNeedsStaffReview)
    assert "whole yen" not in str(review.model_dump())
    decimals = refused(Doc(BASE).totals(PayableAmount="281240.5").xml())
    assert any("whole yen" in v.message_en and "281240.5" in v.message_en
               for v in decimals.violations)


def test_no_transaction_date_is_refused_as_a_qualified_invoice_item() -> None:
    doc = Doc(BASE).remove("cac:InvoicePeriod")
    for n in (1, 2, 3):
        doc.remove(f"cac:InvoiceLine[{n}]/cac:InvoicePeriod")
    event = refused(doc.xml())
    assert ("INV-1", "cac:Delivery/cbc:ActualDeliveryDate") in found(event)
    assert any("取引年月日" in v.message_ja for v in event.violations)
