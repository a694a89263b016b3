"""The city's own signer against SoftHSM2 and the reference RFC 3161 TSA (CON-2, CON-5, CON-7).

The key lives in a SoftHSM2 token; the signature is PAdES with a TSA timestamp and the
validation data in the DSS (B-LT); pyHanko validates it against the test PKI; a one-byte
edit makes the re-validation fail (CON-5); a wrong PIN is refused without showing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from connectors.citysigner import (
    CitySigner,
    CitySignerError,
    CitySignerSettings,
    async_validate_contract_pdf,
)
from connectors.devpki import CardCredentials, DevPki
from connectors.tsa import HubTimeStamper, TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.card.softhsm import make_token

pytestmark = [pytest.mark.softhsm, pytest.mark.tsa]

PIN = "246810"
LABEL = "city-signer"


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory, pki: DevPki) -> str:
    city = pki.city_signer
    creds = CardCredentials(certificate=city.certificate, key_path=city.key_path,
                            cert_path=city.cert_path)
    return make_token(Path(tmp_path_factory.mktemp("softhsm-city")), creds, LABEL, PIN)


@pytest.fixture(scope="module")
def tsa(pki: DevPki) -> Iterator[ReferenceTsa]:
    with ReferenceTsa(pki) as server:
        yield server


def city_signer(module: str, tsa: ReferenceTsa, pki: DevPki, pin: str = PIN) -> CitySigner:
    settings = CitySignerSettings(module=module, token_label=LABEL, key_label="card",
                                  pin=pin)  # type: ignore[arg-type]
    stamper = HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots))
    return CitySigner(settings, stamper, trust_roots=(pki.root.certificate,))


async def test_city_signature_is_pades_b_lt_and_validates(module: str, tsa: ReferenceTsa,
                                                          pki: DevPki) -> None:
    result = await city_signer(module, tsa, pki).sign(make_pdf(20_000))
    assert "Hub Test City Signer" in result.signer_subject
    reader = PdfFileReader(BytesIO(result.pdf))
    (sig,) = reader.embedded_signatures
    assert "/DSS" in reader.root  # long-term validation data embedded (B-LT)
    dss = reader.root["/DSS"]
    assert len(dss["/Certs"]) >= 2  # the signer's and the TSA's certificates, at least
    report = await async_validate_contract_pdf(result.pdf, pki.trust_roots)
    assert report.valid, report
    (only,) = report.signatures
    assert only.timestamped_at is not None
    assert only.modification == "LTA_UPDATES"  # the DSS revision after the signature
    assert sig.field_name == "CitySignature"


async def test_one_byte_edit_fails_revalidation(module: str, tsa: ReferenceTsa,
                                                pki: DevPki) -> None:
    signed = (await city_signer(module, tsa, pki).sign(make_pdf(5_000, "Contract R8-002"))).pdf
    at = signed.index(b"Contract R8-002")
    edited = signed[:at] + b"X" + signed[at + 1:]
    report = await async_validate_contract_pdf(edited, pki.trust_roots)
    assert not report.valid
    assert any("CON-5" in p for s in report.signatures for p in s.problems)


async def test_contractor_signature_stays_valid_under_the_city_signature(
        module: str, tsa: ReferenceTsa, pki: DevPki) -> None:
    card = pki.issue_card("契約 太郎", "栃木県足利市本城3-2145", 880_001)
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
    ).async_sign_pdf(IncrementalPdfFileWriter(BytesIO(make_pdf(8_000))), output=out)
    both = (await city_signer(module, tsa, pki).sign(out.getvalue())).pdf
    report = await async_validate_contract_pdf(both, pki.trust_roots)
    assert [s.field_name for s in report.signatures] == ["ContractorSignature", "CitySignature"]
    assert report.valid, report


async def test_wrong_pin_is_refused_without_showing_it(module: str, tsa: ReferenceTsa,
                                                        pki: DevPki) -> None:
    with pytest.raises(CitySignerError) as caught:
        await city_signer(module, tsa, pki, pin="999999").sign(make_pdf(3_000))
    assert "999999" not in str(caught.value)
    assert PIN not in repr(city_signer(module, tsa, pki))
