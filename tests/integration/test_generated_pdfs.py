"""The PDFs the hub writes itself embed their Japanese font and carry PDF/A-2b metadata,
judged by poppler (``pdffonts``, ``pdfinfo``) and, once signed, by ``pdfsig``.

The sample contract set is signed as a case is (the contractor's PAdES B-T, then the
city's B-LT from SoftHSM2 with the reference TSA); both signatures validate for the hub
and for pdfsig, and the signed file still has every font embedded and XMP that agrees
with its information dictionary. veraPDF, the PDF/A validator, finds the sample, the
certificate and both signed files PDF/A-2b conformant, and a plain reportlab PDF not.
The card agent's PDFium reads the Japanese text back.
Without the font file the hub refuses to write the PDF, saying what to install.
"""

from __future__ import annotations

import subprocess
import tempfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from card_agent.document import read_document
from connectors.citysigner import async_validate_contract_pdf
from connectors.tsa import HubTimeStamper, TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import DevPki
from hub.sample.case import SampleCase
from pipelines.contract import pdfa
from pipelines.contract.archive import (
    CertificateParty,
    CertificateSignature,
    ConclusionCertificate,
    certificate_pdf,
)
from schemas.contract import DocumentRef
from tests.card.pdfs import make_pdf
from tests.integration.test_citysigner import module, pki, signer_on, tsa
from tests.support.outside_validators import assert_outside_agrees, verapdf_verdicts

__all__ = ["module", "pki", "tsa"]  # fixtures, imported for pytest


def _poppler(tool: str, pdf: bytes, *args: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(pdf)
        done = subprocess.run([tool, *args, str(path)], capture_output=True, text=True,
                              timeout=60, check=True)
    return done.stdout


def fonts(pdf: bytes) -> list[tuple[str, str]]:
    """``pdffonts``' (name, emb) per font."""
    rows = _poppler("pdffonts", pdf).splitlines()[2:]
    found = []
    for row in rows:
        parts = row.split()
        # name type [type2] encoding emb sub uni object ID: emb is the 5th from the end
        found.append((parts[0], parts[-5]))
    return found


def info(pdf: bytes) -> dict[str, str]:
    lines = _poppler("pdfinfo", pdf, "-isodates").splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def xmp(pdf: bytes) -> dict[str, str]:
    """The XMP's simple properties (``prefix:name``, as element or attribute) and the
    first ``rdf:li`` of each array, from ``pdfinfo -meta``."""
    from lxml import etree

    text = _poppler("pdfinfo", pdf, "-meta")
    root = etree.fromstring(text.split("?>", 1)[1].rsplit("<?xpacket", 1)[0].encode())
    prefixes = {"http://www.aiim.org/pdfa/ns/id/": "pdfaid",
                "http://purl.org/dc/elements/1.1/": "dc", "http://ns.adobe.com/xap/1.0/": "xmp",
                "http://ns.adobe.com/pdf/1.3/": "pdf"}

    def name(qualified: str) -> str | None:
        ns, _, local = qualified[1:].partition("}")
        return f"{prefixes[ns]}:{local}" if ns in prefixes else None

    found: dict[str, str] = {}
    for desc in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"):
        for key, value in desc.attrib.items():
            if (n := name(key)) is not None:
                found[n] = value
        for child in desc:
            if (n := name(child.tag)) is not None:
                items = list(child.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li"))
                found[n] = (items[0].text if items else child.text) or ""
    return found


def assert_pdfa_style(pdf: bytes, title: str) -> None:
    found = fonts(pdf)
    assert found, "no fonts"
    assert all(emb == "yes" for _, emb in found), found
    assert all("IPAex" in name for name, _ in found), found
    assert b"HeiseiMin" not in pdf
    assert b"HeiseiKakuGo" not in pdf
    meta = xmp(pdf)
    assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("2", "B")
    described = info(pdf)
    # the XMP says what the information dictionary says (PDF/A-2 6.6.2.3)
    assert described["Title"] == meta["dc:title"] == title
    assert described["Author"] == meta["dc:creator"]
    assert described["Subject"] == meta["dc:description"]
    assert described["Creator"] == meta["xmp:CreatorTool"]
    assert described.get("Producer", "") == meta.get("pdf:Producer", "")
    for key, prop in (("CreationDate", "xmp:CreateDate"), ("ModDate", "xmp:ModifyDate")):
        assert (datetime.fromisoformat(described[key])
                == datetime.fromisoformat(meta[prop])), key
    reader = PdfFileReader(BytesIO(pdf))
    (ref,) = reader.root["/OutputIntents"]
    intent = ref.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    assert intent["/DestOutputProfile"]["/N"] == 3
    assert "/ID" in reader.trailer


def test_sample_contract_embeds_ipaex_and_reads_back_in_pdfium() -> None:
    case = SampleCase.new()
    pdf = case.contract_pdf()
    assert_pdfa_style(pdf, f"工事請負契約書 {case.case_id}")
    view = read_document(pdf)  # the card agent's confirmation page
    assert "工事請負契約書" in view.text
    assert f"{case.amount_yen:,}" in view.text
    assert view.preview_png.startswith(b"\x89PNG")


def _certificate(signatures_valid: bool = True) -> ConclusionCertificate:
    at = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
    return ConclusionCertificate(
        case_id="R8-0777", subject="市道１号線舗装工事", amount_yen=50_000_000,
        concluded_at=at,
        parties=(CertificateParty(role="受注者", name="北東組株式会社",
                                  addresses=("director@hokuto.example.jp",), agreed_at=at),
                 CertificateParty(role="発注者", name="国土交通省 北東国道事務所",
                                  addresses=("keiyaku@city.example.jp",), agreed_at=at)),
        document=DocumentRef(sha256="ab" * 32, filename="R8-0777.pdf", size_bytes=60_000,
                             uri="doc://sha256/" + "ab" * 32),
        signatures=(CertificateSignature(field_name="ContractorSignature", signer="契約 太郎",
                                         timestamped_at=at, valid=signatures_valid),),
        signatures_valid=signatures_valid, issued_at=at)


def test_conclusion_certificate_embeds_ipaex_gothic() -> None:
    pdf = certificate_pdf(_certificate())
    assert_pdfa_style(pdf, "合意締結証明書 R8-0777")
    text = read_document(pdf).text
    for said in ("合意締結証明書", "北東組株式会社", "署名 ContractorSignature: 有効"):
        assert said in text


async def test_signed_sample_and_certificate_validate_and_stay_pdfa(
        module: str, tsa: ReferenceTsa, pki: DevPki) -> None:
    case = SampleCase.new()
    pdf = case.contract_pdf()
    card = pki.issue_card(case.holder, case.address, 880_101)
    stamper = HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots))
    contractor = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
        str(card.key_path), str(card.cert_path),
        ca_chain_files=(str(pki.card_ca.cert_path),))
    assert contractor is not None
    out = BytesIO()
    await signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="ContractorSignature",
                                     subfilter=fields.SigSeedSubFilter.PADES),
        signer=contractor, timestamper=stamper,
    ).async_sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=out)
    both = (await signer_on(module, tsa, pki).sign(out.getvalue())).pdf
    report = await async_validate_contract_pdf(both, pki.trust_roots)
    assert [s.field_name for s in report.signatures] == ["ContractorSignature", "CitySignature"]
    assert report.valid, report
    assert_outside_agrees(both, pki.trust_roots, hub_accepts=True, signatures=2)
    # pyHanko's incremental updates keep the PDF/A metadata and update it in step
    assert_pdfa_style(both, f"工事請負契約書 {case.case_id}")
    assert info(both)["ModDate"] != info(pdf)["ModDate"]
    sealed = (await signer_on(module, tsa, pki).sign(certificate_pdf(_certificate()))).pdf
    assert_outside_agrees(sealed, pki.trust_roots, hub_accepts=True, signatures=1)
    verdicts = verapdf_verdicts({"sample": pdf, "signed": both,
                                 "certificate": certificate_pdf(_certificate()),
                                 "sealed-certificate": sealed,
                                 "plain": make_pdf(2_000, "not PDF/A")})
    assert verdicts.pop("plain"), "veraPDF passed a PDF without PDF/A metadata"
    assert verdicts == {"sample": [], "signed": [], "certificate": [],
                        "sealed-certificate": []}, verdicts


def test_without_the_font_file_the_pdf_is_refused_with_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = (tmp_path / "ipaexg.ttf",)
    monkeypatch.setitem(pdfa.FONT_FILES, "IPAexGothic", missing)
    with pytest.raises(pdfa.JapaneseFontMissingError) as refused:
        certificate_pdf(_certificate())
    assert "fonts-ipaexfont" in str(refused.value)
    assert str(missing[0]) in str(refused.value)
