"""The official JP PINT 1.1.3 examples (tests/data/jp_pint/) and element-level edits of them,
for the invoice gate and rules tests."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from pipelines.invoices.ubl import NS

EXAMPLES = Path(__file__).parent.parent / "data" / "jp_pint"
OFFICIAL_T = "T1234567890123"
"""The examples' issuer number: its 法人番号 check digit is wrong (the hub refuses it, INV-1)."""
VALID_T = "T9234567890123"
"""A number with a valid check digit, registered for the contractor in these tests."""
CBC = f"{{{NS['cbc']}}}"
CAC = f"{{{NS['cac']}}}"


def example(name: str) -> str:
    """An official example as published, e.g. ``example("Example1-minimum")``."""
    stem = "JP BIS Self Billing Invoice UBL Example" if name == "SelfBilling" \
        else f"Japan PINT Invoice UBL {name}"
    return (EXAMPLES / f"{stem}.xml").read_text("utf-8")


def with_valid_number(xml: str) -> str:
    """The example issued under :data:`VALID_T` (issuer, its endpoint and legal ID alike)."""
    return xml.replace(f">{OFFICIAL_T}<", f">{VALID_T}<").replace(
        f">{OFFICIAL_T[1:]}<", f">{VALID_T[1:]}<")


class Doc:
    """An invoice to edit element by element (comments dropped)."""

    def __init__(self, xml: str) -> None:
        parser = etree.XMLParser(remove_comments=True, resolve_entities=False, no_network=True)
        self.root = etree.fromstring(xml.encode("utf-8"), parser)

    def find(self, path: str) -> etree._Element:
        node = self.root.find(path, NS)
        assert node is not None, path
        return node

    def set(self, path: str, text: str) -> Doc:
        self.find(path).text = text
        return self

    def remove(self, path: str) -> Doc:
        node = self.find(path)
        parent = node.getparent()
        assert parent is not None
        parent.remove(node)
        return self

    def totals(self, **amounts: int | str) -> Doc:
        """Set LegalMonetaryTotal amounts, e.g. ``totals(PayableAmount=1)``."""
        for name, value in amounts.items():
            self.set(f"cac:LegalMonetaryTotal/cbc:{name}", str(value))
        return self

    def add_line(self, amount: int, category: str, percent: str | None, name: str) -> Doc:
        line = etree.SubElement(self.root, f"{CAC}InvoiceLine")
        etree.SubElement(line, f"{CBC}ID").text = str(len(self.root.findall(
            "cac:InvoiceLine", NS)))
        etree.SubElement(line, f"{CBC}InvoicedQuantity", unitCode="H87").text = "1"
        etree.SubElement(line, f"{CBC}LineExtensionAmount", currencyID="JPY").text = str(amount)
        item = etree.SubElement(line, f"{CAC}Item")
        etree.SubElement(item, f"{CBC}Name").text = name
        self._category(etree.SubElement(item, f"{CAC}ClassifiedTaxCategory"), category, percent)
        price = etree.SubElement(line, f"{CAC}Price")
        etree.SubElement(price, f"{CBC}PriceAmount", currencyID="JPY").text = str(amount)
        return self

    def add_subtotal(self, taxable: int, tax: int, category: str, percent: str | None) -> Doc:
        total = self.find("cac:TaxTotal")
        sub = etree.SubElement(total, f"{CAC}TaxSubtotal")
        etree.SubElement(sub, f"{CBC}TaxableAmount", currencyID="JPY").text = str(taxable)
        etree.SubElement(sub, f"{CBC}TaxAmount", currencyID="JPY").text = str(tax)
        self._category(etree.SubElement(sub, f"{CAC}TaxCategory"), category, percent)
        return self

    @staticmethod
    def _category(node: etree._Element, category: str, percent: str | None) -> None:
        etree.SubElement(node, f"{CBC}ID").text = category
        if percent is not None:
            etree.SubElement(node, f"{CBC}Percent").text = percent
        scheme = etree.SubElement(node, f"{CAC}TaxScheme")
        etree.SubElement(scheme, f"{CBC}ID").text = "VAT"

    def xml(self) -> str:
        return etree.tostring(self.root, encoding="unicode")
