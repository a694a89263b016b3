"""INV-4 and the hub's rules on OpenPeppol's JP PINT 1.1.3 examples (tests/data/jp_pint/).

Each example goes through the official rules (the vendored compiled Schematron, run by
Saxon) and then the hub's rules, twice:

- as published: every example's issuer number is ``T1234567890123``, whose 法人番号 check
  digit is wrong. The hub stays stricter than JP PINT there (JP PINT checks only the form
  ``T`` + 13 digits), so every example the gate lets through is refused with INV-1, even
  when that number is in the contractor's user data: an invoice under a number the NTA
  cannot have issued is never paid.
- issued under a valid, registered number: the outcome the hub is built for, per example
  (accepted with its 適格請求書 items, refused with the rule, or sent to the staff).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipelines.invoices.gate import jp_pint_version, run_gate
from pipelines.invoices.rules import InvoiceStatus, PriorInvoice, decide_invoice
from schemas.erp import ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceNeedsStaffReview,
    InvoiceRejected,
    InvoiceSubmitted,
    TaxSubtotal,
)
from tests.unit.invoice_docs import EXAMPLES, OFFICIAL_T, VALID_T, example, with_valid_number

CONTRACTOR = "1234567890123456"
ALL = ["Example", "Example1-minimum", "Example2-TaxAcctCur", "Example3-SumInv1",
       "Example4-SumInv2", "Example5-AllowanceCharge", "Example6-CorrInv",
       "Example7-Return.Quan.ItPr", "Example9-SumInv1 and O", "SelfBilling"]
SELF_BILLING_FATAL = ["ibr-cl-01", "aligned-ibrp-001-jp", "aligned-ibrp-002-jp",
                      "aligned-ibrp-cl-02-jp"]


def decide(xml: str, registered: frozenset[str],
           before: dict[str, PriorInvoice] | None = None) -> Any:
    cmd = InvoiceSubmitted(case_id="R5-KOJI-0001", contract_number="R5-0001",
                           contractor_id=CONTRACTOR, ubl_xml=xml)
    return decide_invoice(cmd, registered=registered, accepted_before=before or {},
                          entity="ashikaga-city")


def outcome(decision: Any) -> tuple[str, list[str]]:
    event = decision.emits[0][1]
    if isinstance(event, InvoiceRejected):
        return "rejected", [v.reference or v.rule_id for v in event.violations]
    if isinstance(event, InvoiceNeedsStaffReview):
        return "staff", [v.rule_id for v in event.reasons]
    assert isinstance(event, InvoiceAccepted)
    return "accepted", []


def test_the_package_is_complete_and_its_version_known() -> None:
    assert jp_pint_version() == "1.1.3"
    assert len(list(EXAMPLES.glob("*.xml"))) == len(ALL) == 10
    assert (EXAMPLES / "LICENSE-phive-rules.txt").read_text("utf-8").count("Apache") >= 1


@pytest.mark.parametrize("name", ALL)
def test_official_rules_on_each_published_example(name: str) -> None:
    """The nine billing examples pass the official rules; the self-billing one (type 389,
    its own specification and process) is not a JP PINT billing invoice."""
    fatal = [f.rule for f in run_gate(example(name)) if f.flag == "fatal"]
    assert fatal == (SELF_BILLING_FATAL if name == "SelfBilling" else [])


@pytest.mark.parametrize(("name", "expected"), [
    ("Example", ("rejected", ["INV-1"])),
    ("Example1-minimum", ("rejected", ["INV-1"])),
    ("Example2-TaxAcctCur", ("rejected", ["INV-2"] * 14)),  # EUR: the city pays yen
    ("Example3-SumInv1", ("rejected", ["INV-1"])),
    ("Example4-SumInv2", ("rejected", ["INV-1"])),
    ("Example5-AllowanceCharge", ("rejected", ["INV-1"])),
    ("Example6-CorrInv", ("rejected", ["INV-1"])),
    ("Example7-Return.Quan.ItPr", ("rejected", ["INV-1"])),  # before the staff see it
    ("Example9-SumInv1 and O", ("rejected", ["INV-1"])),
    ("SelfBilling", ("rejected", [*SELF_BILLING_FATAL, "INV-2", "INV-2"])),
])
def test_each_published_example_through_gate_and_rules(name: str,
                                                       expected: tuple[str, list[str]]) -> None:
    decision = decide(example(name), frozenset({OFFICIAL_T}))
    assert outcome(decision) == expected
    event = decision.emits[0][1]
    if expected[1] == ["INV-1"]:
        assert "チェックデジット" in event.violations[0].message_ja


S10 = TaxSubtotal(rate_percent=10, category="S", taxable_amount=260_000, tax_amount=26_000)
E0 = TaxSubtotal(rate_percent=0, category="E", taxable_amount=3_490, tax_amount=0)


@pytest.mark.parametrize(("name", "payable", "transaction", "start", "due", "subtotals"), [
    ("Example1-minimum", 281_240, date(2023, 10, 18), date(2023, 10, 18), None,
     (S10.model_copy(update={"taxable_amount": 252_500, "tax_amount": 25_250}), E0)),
    ("Example3-SumInv1", 289_490, date(2023, 10, 31), date(2023, 10, 1), date(2023, 11, 20),
     (S10, E0)),
    ("Example4-SumInv2", 289_490, date(2023, 10, 31), date(2023, 10, 1), date(2023, 11, 20),
     (S10, E0)),
    ("Example5-AllowanceCharge", 289_490, date(2023, 10, 18), None, date(2023, 11, 20),
     (S10, E0)),
    ("Example9-SumInv1 and O", 359_490, date(2023, 10, 31), date(2023, 10, 1),
     date(2023, 11, 20), (S10, E0, TaxSubtotal(rate_percent=None, category="O",
                                               taxable_amount=70_000, tax_amount=0))),
])
def test_examples_under_a_valid_number_are_paid_with_every_item(
        name: str, payable: int, transaction: date, start: date | None, due: date | None,
        subtotals: tuple[TaxSubtotal, ...]) -> None:
    """適格請求書: issuer and T-number, transaction date, description, amounts and tax per
    category and rate, buyer; the due date goes on to the ERP's payment request."""
    decision = decide(with_valid_number(example(name)), frozenset({VALID_T}))
    accepted, erp = decision.emits[0][1], decision.emits[1][1]
    assert isinstance(accepted, InvoiceAccepted)
    assert isinstance(erp, ErpRegistrationRequested)
    assert (accepted.issuer_number, accepted.payable_amount, erp.amount_jpy) == (
        VALID_T, payable, payable)
    assert (accepted.transaction_date, accepted.transaction_start) == (transaction, start)
    assert accepted.tax_subtotals == subtotals
    assert (accepted.seller_name, accepted.buyer_name) == ("株式会社 〇〇商事", "株式会社 〇〇物産")
    assert accepted.description is not None
    assert "デスクチェア" in accepted.description or "D001-1" in accepted.description
    assert (accepted.due_date, erp.due_date) == (due, due)
    assert accepted.warnings == ()


def test_example_with_a_preceding_invoice_unknown_to_the_hub_is_refused() -> None:
    """Example (and 6-CorrInv) refer to invoice 123: a correction of an invoice the city
    never accepted from this contractor is refused (INV-6), not paid as a new invoice."""
    for name in ("Example", "Example6-CorrInv"):
        decision = decide(with_valid_number(example(name)), frozenset({VALID_T}))
        assert outcome(decision) == ("rejected", ["INV-6"])


def test_correction_example_replaces_the_unpaid_original() -> None:
    before = {"123": PriorInvoice(InvoiceStatus.REQUESTED, "R5-0001:invoice:abc")}
    decision = decide(with_valid_number(example("Example6-CorrInv")), frozenset({VALID_T}),
                      before)
    accepted, erp = decision.emits[0][1], decision.emits[1][1]
    assert accepted.replaces_invoice_id == "123"
    assert erp.replaces_business_key == "R5-0001:invoice:abc"


def test_correction_example_of_a_paid_original_is_refused() -> None:
    before = {"123": PriorInvoice(InvoiceStatus.PAID, "R5-0001:invoice:abc")}
    decision = decide(with_valid_number(example("Example6-CorrInv")), frozenset({VALID_T}),
                      before)
    assert outcome(decision) == ("rejected", ["INV-6"])
    (violation,) = decision.emits[0][1].violations
    assert "支払済み" in violation.message_ja
    assert "already been paid" in violation.message_en


def test_return_example_goes_to_the_staff_not_to_the_erp() -> None:
    """Example7 (a return: −2 chairs, PayableAmount −110,000): read as negative amounts, no
    'not whole yen' message, and a staff task instead of a payment (INV-6)."""
    decision = decide(with_valid_number(example("Example7-Return.Quan.ItPr")),
                      frozenset({VALID_T}))
    assert len(decision.emits) == 1
    review = decision.emits[0][1]
    assert isinstance(review, InvoiceNeedsStaffReview)
    assert (review.payable_amount, review.type_code) == (-110_000, "380")
    assert "マイナス" in review.reasons[0].message_ja
    assert "negative" in review.reasons[0].message_en


def test_foreign_currency_example_is_refused_with_the_currency() -> None:
    decision = decide(with_valid_number(example("Example2-TaxAcctCur")), frozenset({VALID_T}))
    fields = [v.field for v in decision.emits[0][1].violations]
    assert "cbc:DocumentCurrencyCode" in fields
    assert "cac:TaxTotal" in fields  # two tax totals (EUR and JPY): one only for a JPY invoice


def test_every_assertion_of_1_1_3_is_fatal() -> None:
    """JP PINT 1.1.3 flags every assertion fatal: nothing it finds is only a warning."""
    from pipelines.invoices.gate import RULES_DIR

    for sheet in RULES_DIR.glob("*.xslt"):
        text = sheet.read_text("utf-8")
        assert text.count('name="flag">fatal<') > 0
        assert 'name="flag">warning<' not in text


def test_a_warning_of_the_official_rules_is_recorded_not_a_rejection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """For rule sets that have warnings: the invoice is paid and the warning kept on it."""
    from pipelines.invoices import rules
    from pipelines.invoices.gate import GateFinding

    finding = GateFinding(rule="ibr-999", flag="warning", text="[ibr-999]-Should be better.",
                          location="/*:Invoice[1]")
    monkeypatch.setattr(rules, "run_gate", lambda xml: (finding,))
    decision = decide(with_valid_number(example("Example1-minimum")), frozenset({VALID_T}))
    assert decision.accepted is not None
    (warning,) = decision.accepted.warnings
    assert (warning.rule_id, warning.reference, warning.flag) == ("INV-4", "ibr-999", "warning")
    assert "警告" in warning.message_ja
    assert "Should be better" in warning.message_en


def test_the_one_step_update_reproduces_the_vendored_package(tmp_path: Path) -> None:
    """deploy/update_jp_pint.py on packages laid out as OpenPeppol publishes them gives
    back exactly the vendored stylesheets, examples and manifest."""
    from pipelines.invoices.gate import RULES_DIR

    manifest = json.loads((RULES_DIR / "MANIFEST.json").read_text("utf-8"))
    package = tmp_path / manifest["package"]
    self_billing = tmp_path / manifest["self_billing_package"]
    with zipfile.ZipFile(package, "w") as z, zipfile.ZipFile(self_billing, "w") as sb:
        for name in manifest["stylesheets"]:
            z.write(RULES_DIR / name, f"trn-invoice/schematron/{name}")
        for name in manifest["examples"]:
            (sb if "Self Billing" in name else z).write(EXAMPLES / name,
                                                        f"trn-invoice/example/{name}")
    root = tmp_path / "repo"
    subprocess.run([sys.executable, str(Path(__file__).parents[2] / "deploy" /
                                        "update_jp_pint.py"), str(package), "--self-billing",
                    str(self_billing), "--root", str(root)], check=True, capture_output=True)
    written = root / "pipelines" / "invoices" / "jp_pint"
    assert json.loads((written / "MANIFEST.json").read_text("utf-8")) == manifest
    for name, digest in manifest["stylesheets"].items():
        assert hashlib.sha256((written / name).read_bytes()).hexdigest() == digest
        assert (written / name).read_bytes() == (RULES_DIR / name).read_bytes()
    for name, digest in manifest["examples"].items():
        data = (root / "tests" / "data" / "jp_pint" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest == hashlib.sha256(
            (EXAMPLES / name).read_bytes()).hexdigest()
