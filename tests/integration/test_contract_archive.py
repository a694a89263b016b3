"""The contract archive on SQLite and PostgreSQL (CON-5, CON-6, CON-7).

Concluded cases with real PAdES signatures (contractor's card key, city's key, the
reference TSA): searched by conclusion date, amount and counterparty; listed with
agreed n/m; the 合意締結証明書 as JSON and PDF; re-validation valid, and invalid after a
one-byte edit of the stored PDF; the HTTP router answering the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.tsa import HubTimeStamper, TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import DevPki
from hub.contract.archive_api import archive_router
from pipelines.contract.archive import (
    NotConcludedError,
    certificate_pdf,
    conclusion_certificate,
    revalidate,
    search_contracts,
)
from pipelines.contract.models import DocumentRow
from pipelines.contract.state import CaseState
from pipelines.contract.store import put_document, save_case
from schemas.contract import ContractParty, ContractRoute, ContractStatus
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.support.staff import AUTH, every_entity

pytestmark = [pytest.mark.postgres, pytest.mark.tsa]

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def signed_pdf(pki: DevPki) -> Iterator[bytes]:
    """A contract signed by a contractor card key and then the city, both timestamped."""
    with ReferenceTsa(pki) as tsa:
        stamper = HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots))
        card = pki.issue_card("足利 一郎", "栃木県足利市本城3-2145", 660_001)
        pdf = make_pdf(6_000, "Contract R8-0100")
        for key, cert, chain, name in (
            (card.key_path, card.cert_path, (str(pki.card_ca.cert_path),), "ContractorSignature"),
            (pki.city_signer.key_path, pki.city_signer.cert_path, (), "CitySignature"),
        ):
            signer = signers.SimpleSigner.load(  # type: ignore[no-untyped-call]
                str(key), str(cert), ca_chain_files=chain)
            out = BytesIO()
            signers.PdfSigner(signers.PdfSignatureMetadata(
                field_name=name, subfilter=fields.SigSeedSubFilter.PADES),
                signer=signer, timestamper=stamper,
            ).sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=out)
            pdf = out.getvalue()
        yield pdf


def case(case_id: str, contractor: str, amount: int, concluded: datetime | None,
         session: Session, pdf: bytes | None) -> CaseState:
    state = CaseState(
        case_id=case_id, procuring_entity="ashikaga-city", subject=f"工事 {case_id}",
        amount_yen=amount, contractor_network="tochigi", contractor_user_id="U1",
        contractor_name=contractor, city_name="足利市",
        city_officer=ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp"),
        route=ContractRoute.CARD,
        status=ContractStatus.CONCLUDED if concluded else ContractStatus.CONTRACTOR_SIGNED,
        opened_at=T0, updated_at=concluded or T0 + timedelta(days=1),
        authorized=ContractParty(name="足利 一郎", email="boss@demo.co.jp"),
        contractor_agreed_at=T0 + timedelta(hours=1), city_agreed_at=concluded,
        concluded_at=concluded,
        signed=put_document(session, f"{case_id}.pdf", pdf, T0) if pdf else None)
    save_case(session, state)
    return state


@pytest.fixture
def archive(engine: Engine, signed_pdf: bytes) -> Engine:
    with Session(engine) as session, session.begin():
        case("R8-0100", "デモ建設株式会社", 25_300_000, T0 + timedelta(days=3), session,
             signed_pdf)
        case("R8-0101", "足利工務店", 4_800_000, T0 + timedelta(days=40), session,
             make_pdf(2_000, "unsigned"))
        case("R8-0102", "デモ建設株式会社", 9_000_000, None, session, None)
    return engine


def test_search_by_date_amount_and_counterparty(archive: Engine) -> None:
    with Session(archive) as s:
        everything = search_contracts(s)
        assert [c.case_id for c in everything] == ["R8-0101", "R8-0100", "R8-0102"]
        april = search_contracts(s, concluded_from=T0, concluded_to=T0 + timedelta(days=30))
        assert [c.case_id for c in april] == ["R8-0100"]
        big = search_contracts(s, amount_min=5_000_000, amount_max=30_000_000)
        assert sorted(c.case_id for c in big) == ["R8-0100", "R8-0102"]
        # a half-width katakana query finds the full-width 商号 (NFKC)
        demo = search_contracts(s, counterparty="ﾃﾞﾓ建設")
        assert sorted(c.case_id for c in demo) == ["R8-0100", "R8-0102"]
        (pending,) = search_contracts(s, status=ContractStatus.CONTRACTOR_SIGNED)
        assert pending.agreed_label == "1/2"
        assert pending.party_names == ("デモ建設株式会社", "足利市")
        (done,) = search_contracts(s, counterparty="足利工務店")
        assert done.agreed_label == "2/2"


@pytest.mark.parametrize("typed", [
    "株式会社ＮＫ建設",  # exactly as stored (full-width, as the 資格審査情報 holds it)
    "株式会社NK建設",  # half-width
    "(株)ＮＫ建設",  # abbreviated legal form
    "株式会社 nk建設",  # a space, lower case
    "ＮＫ建設",  # part of it
])
def test_counterparty_search_compares_normalised_keys_on_both_sides(engine: Engine,
                                                                    typed: str) -> None:
    """CON-7: the typed 商号 and the stored one are both compared as trade_name_key."""
    with Session(engine) as session, session.begin():
        case("R8-0200", "株式会社ＮＫ建設", 1_000_000, None, session, None)
        case("R8-0201", "株式会社ＭＫ建設", 1_000_000, None, session, None)
    with Session(engine) as s:
        assert [c.case_id for c in search_contracts(s, counterparty=typed)] == ["R8-0200"]
        assert search_contracts(s, counterparty="%") == []  # LIKE wildcards are literal


def test_certificate_lists_parties_hash_and_valid_signatures(archive: Engine, pki: DevPki,
                                                             signed_pdf: bytes) -> None:
    with Session(archive) as s:
        cert = conclusion_certificate(s, "R8-0100", pki.trust_roots, T0 + timedelta(days=5))
        with pytest.raises(NotConcludedError):
            conclusion_certificate(s, "R8-0102", pki.trust_roots, T0)
    assert cert.document.sha256 == hashlib.sha256(signed_pdf).hexdigest()
    assert [(p.role, p.name) for p in cert.parties] == [("受注者", "デモ建設株式会社"),
                                                        ("発注者", "足利市")]
    assert [s.field_name for s in cert.signatures] == ["ContractorSignature", "CitySignature"]
    assert cert.signatures_valid
    assert all(s.timestamped_at is not None for s in cert.signatures)
    pdf = certificate_pdf(cert)
    assert PdfFileReader(BytesIO(pdf)).root["/Pages"]["/Count"] == 1


def test_one_byte_edit_of_the_stored_pdf_shows_on_revalidation(archive: Engine,
                                                              pki: DevPki,
                                                              signed_pdf: bytes) -> None:
    with Session(archive) as s:
        assert revalidate(s, "R8-0100", pki.trust_roots).valid
    with Session(archive) as s, s.begin():
        row = s.get(DocumentRow, hashlib.sha256(signed_pdf).hexdigest())
        assert row is not None
        at = signed_pdf.index(b"Contract R8-0100")
        row.content = signed_pdf[:at] + b"K" + signed_pdf[at + 1:]
        s.add(row)
    with Session(archive) as s:
        report = revalidate(s, "R8-0100", pki.trust_roots)
    assert not report.valid
    assert any("SHA-256" in p for p in report.problems)
    assert not all(sig.intact for sig in report.signatures)


def test_router_lists_certifies_and_validates(archive: Engine, pki: DevPki) -> None:
    app = FastAPI()
    app.include_router(archive_router(archive, pki.trust_roots, identity=every_entity()))
    with TestClient(app, headers=AUTH) as http:
        listed = http.get("/contracts", params={"counterparty": "デモ", "amount_min": 10_000_000})
        assert [c["case_id"] for c in listed.json()] == ["R8-0100"]
        assert http.get("/contracts/R8-0100/certificate").json()["signatures_valid"] is True
        assert http.get("/contracts/R8-0100/certificate.pdf").content.startswith(b"%PDF-")
        assert http.post("/contracts/R8-0100/validation").json()["valid"] is True
        missing = http.get("/contracts/R8-0102/certificate")
        assert (missing.status_code, missing.json()["detail"]["rule_id"]) == (404, "CON-6")


def test_certificate_pdf_without_the_font_is_a_503_naming_con6(
        archive: Engine, pki: DevPki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.contract import pdfa

    monkeypatch.setitem(pdfa.FONT_FILES, "IPAexGothic", (tmp_path / "ipaexg.ttf",))
    app = FastAPI()
    app.include_router(archive_router(archive, pki.trust_roots, identity=every_entity()))
    with TestClient(app, headers=AUTH) as http:
        refused = http.get("/contracts/R8-0100/certificate.pdf")
        assert refused.status_code == 503
        (violation,) = refused.json()["detail"]["violations"]
        assert violation["rule_id"] == "CON-6"
        assert "fonts-ipaexfont" in violation["next_step_en"]
        assert http.get("/contracts/R8-0100/certificate").status_code == 200  # JSON still
