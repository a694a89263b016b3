"""INV-2: the JP PINT UBL reader on the sample invoice (tests/data/jp_pint_invoice.xml),
each essential element missing or wrong (the rejection names the element), and hostile
XML (entities, DTDs, external references) refused without being expanded or fetched."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from pipelines.invoices.ubl import read_jp_pint
from schemas.invoice import TaxSubtotal

SAMPLE = (Path(__file__).parent.parent / "data" / "jp_pint_invoice.xml").read_text("utf-8")
SELLER = "cac:AccountingSupplierParty/cac:Party"


def edit(old: str, new: str, xml: str = SAMPLE) -> str:
    assert old in xml, old
    return xml.replace(old, new, 1)


def test_inv2_sample_invoice_reads_to_its_essentials() -> None:
    read = read_jp_pint(SAMPLE)
    assert read.violations == ()
    fields = read.fields
    assert fields is not None
    assert (fields.invoice_id, fields.issue_date) == ("INV-2023-0930-001", date(2023, 10, 2))
    assert (fields.issuer_number, fields.seller_name, fields.buyer_name) == (
        "T9234567890123", "〇〇建設株式会社", "足利市")
    assert fields.tax_subtotals == (TaxSubtotal(rate_percent=10, taxable_amount=45_454_546,
                                                tax_amount=4_545_454),)
    assert fields.payable_amount == 30_000_000


def test_inv2_two_tax_rates_are_kept_apart() -> None:
    """標準税率 10 % and 軽減税率 8 %: one subtotal per rate, the total is their sum."""
    eight = """<cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="JPY">10000</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="JPY">800</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>AA</cbc:ID><cbc:Percent>8</cbc:Percent>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>"""
    xml = edit("</cac:TaxTotal>", eight)
    xml = edit('<cbc:TaxAmount currencyID="JPY">4545454</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
               '<cbc:TaxAmount currencyID="JPY">4546254</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
               xml)
    line = """<cac:InvoiceLine>
    <cbc:ID>2</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="JPY">10000</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>現場作業員の弁当（軽減税率）</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>AA</cbc:ID><cbc:Percent>8</cbc:Percent>
      <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="JPY">10000</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</Invoice>"""
    xml = edit("</Invoice>", line, xml)
    xml = edit("<cbc:LineExtensionAmount currencyID=\"JPY\">45454546</cbc:LineExtensionAmount>\n"
               "    <cbc:TaxExclusiveAmount currencyID=\"JPY\">45454546",
               "<cbc:LineExtensionAmount currencyID=\"JPY\">45464546</cbc:LineExtensionAmount>\n"
               "    <cbc:TaxExclusiveAmount currencyID=\"JPY\">45464546", xml)
    xml = edit("<cbc:TaxInclusiveAmount currencyID=\"JPY\">50000000",
               "<cbc:TaxInclusiveAmount currencyID=\"JPY\">50010800", xml)
    xml = edit("<cbc:PayableAmount currencyID=\"JPY\">30000000",
               "<cbc:PayableAmount currencyID=\"JPY\">30010800", xml)
    read = read_jp_pint(xml)
    assert read.violations == ()
    assert read.fields is not None
    assert [(s.category, s.rate_percent) for s in read.fields.tax_subtotals] == [("S", 10),
                                                                                ("AA", 8)]


@pytest.mark.parametrize(("old", "new", "element"), [
    ("<cbc:ID>INV-2023-0930-001</cbc:ID>", "", "cbc:ID"),
    ("<cbc:IssueDate>2023-10-02</cbc:IssueDate>", "", "cbc:IssueDate"),
    ("<cbc:IssueDate>2023-10-02", "<cbc:IssueDate>令和5年10月2日", "cbc:IssueDate"),
    ("<cbc:CustomizationID>urn:peppol:pint:billing-1@jp-1",
     "<cbc:CustomizationID>urn:peppol:pint:billing-1@aunz-1", "cbc:CustomizationID"),
    ("<cbc:DocumentCurrencyCode>JPY", "<cbc:DocumentCurrencyCode>USD",
     "cbc:DocumentCurrencyCode"),
    ("<cbc:CompanyID>T9234567890123</cbc:CompanyID>", "",
     f"{SELLER}/cac:PartyTaxScheme/cbc:CompanyID"),
    ('schemeID="0188">9234567890123', 'schemeID="0188">5835678256246',
     f"{SELLER}/cbc:EndpointID"),
    ("<cbc:RegistrationName>足利市</cbc:RegistrationName>", "",
     "cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName"),
    ('<cbc:TaxAmount currencyID="JPY">4545454</cbc:TaxAmount>\n      <cac:TaxCategory>',
     '<cbc:TaxAmount currencyID="JPY">454545</cbc:TaxAmount>\n      <cac:TaxCategory>',
     "cac:TaxTotal/cac:TaxSubtotal[1]/cbc:TaxAmount"),
    ("<cbc:Percent>10</cbc:Percent>\n        <cac:TaxScheme>\n          <cbc:ID>VAT</cbc:ID>\n"
     "        </cac:TaxScheme>\n      </cac:TaxCategory>\n    </cac:TaxSubtotal>",
     "<cbc:Percent>ten</cbc:Percent>\n        <cac:TaxScheme>\n          <cbc:ID>VAT</cbc:ID>\n"
     "        </cac:TaxScheme>\n      </cac:TaxCategory>\n    </cac:TaxSubtotal>",
     "cac:TaxTotal/cac:TaxSubtotal[1]/cac:TaxCategory/cbc:Percent"),
    ('<cbc:TaxAmount currencyID="JPY">4545454</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
     '<cbc:TaxAmount currencyID="JPY">4545455</cbc:TaxAmount>\n    <cac:TaxSubtotal>',
     "cac:TaxTotal/cbc:TaxAmount"),
    ('<cbc:PayableAmount currencyID="JPY">30000000</cbc:PayableAmount>', "",
     "cac:LegalMonetaryTotal/cbc:PayableAmount"),
    ('<cbc:PayableAmount currencyID="JPY">30000000', '<cbc:PayableAmount currencyID="JPY">50000000',
     "cac:LegalMonetaryTotal/cbc:PayableAmount"),
    ('<cbc:PayableAmount currencyID="JPY">30000000', '<cbc:PayableAmount currencyID="JPY">3.5',
     "cac:LegalMonetaryTotal/cbc:PayableAmount"),
    ('<cbc:TaxInclusiveAmount currencyID="JPY">50000000',
     '<cbc:TaxInclusiveAmount currencyID="JPY">50000001',
     "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount"),
])
def test_inv2_rejection_names_the_element(old: str, new: str, element: str) -> None:
    """The format is INV-2; the arithmetic behind the totals is INV-5 (both name the element)."""
    read = read_jp_pint(edit(old, new))
    assert read.fields is None
    assert element in [v.field for v in read.violations]
    for v in read.violations:
        assert v.rule_id in ("INV-2", "INV-5")
        assert v.field is not None
        assert v.field in v.message_ja
        assert v.next_step_ja
        assert v.next_step_en


def test_inv2_not_a_ubl_invoice() -> None:
    (violation,) = read_jp_pint("<CreditNote xmlns='urn:x'/>").violations
    assert violation.field == "Invoice"
    (broken,) = read_jp_pint("<Invoice><unclosed></Invoice>").violations
    assert "XML" in broken.message_ja


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Invoice [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol4;</Invoice>"""

XXE_FILE = """<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:ID>&secret;</cbc:ID></Invoice>"""


@pytest.fixture
def http_peer() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request (it must get none)."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY x "pwned">')

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE_FILE,
                                 SAMPLE.replace("<Invoice ", "<!doctype Invoice>\n<Invoice ", 1)])
def test_inv2_hostile_xml_is_refused_unexpanded(xml: str) -> None:
    (violation,) = read_jp_pint(xml).violations
    assert (violation.rule_id, violation.field) == ("INV-2", "DOCTYPE")
    assert "root:" not in violation.message_en
    assert "lol" not in violation.message_ja


def test_inv2_external_dtd_and_entities_are_never_fetched(
        http_peer: tuple[str, list[str]]) -> None:
    url, hits = http_peer
    external = (f'<?xml version="1.0"?>\n<!DOCTYPE Invoice SYSTEM "{url}/invoice.dtd">\n'
                + SAMPLE.split("?>", 1)[1])
    parameter = (f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY % p SYSTEM "{url}/p">%p;]>'
                 '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>')
    for xml in (external, parameter):
        assert read_jp_pint(xml).fields is None
    assert hits == []


def test_inv2_xinclude_is_not_processed() -> None:
    xml = edit("<cbc:ID>INV-2023-0930-001</cbc:ID>",
               '<cbc:ID><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
               'href="file:///etc/passwd" parse="text"/></cbc:ID>')
    read = read_jp_pint(xml)
    assert read.fields is None
    assert [v.field for v in read.violations] == ["cbc:ID"]
