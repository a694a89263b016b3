"""The city's own signer against SoftHSM2 and the reference RFC 3161 TSA (CON-2, CON-5, CON-7).

The key lives in a SoftHSM2 token; the signature is PAdES with a TSA timestamp and the
validation data in the DSS (B-LT); pyHanko validates it against the test PKI; a one-byte
edit makes the re-validation fail (CON-5); a wrong PIN is refused without showing it.
The hub's embedded default (no ``HUB_CITYSIGNER_PIN``) makes its own SoftHSM2 token under
the run directory, once, and signs with it; without SoftHSM2 it says how to install it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import stat
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
from connectors.citysigner.localtoken import use_token_directory
from connectors.tsa import HubTimeStamper, TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki, ensure_pki
from hub.bootstrap import city_signer, default_wiring
from hub.settings import Settings
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.card.softhsm import make_token
from tests.support.outside_validators import assert_outside_agrees, signature_timestamps

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


def signer_on(module: str, tsa: ReferenceTsa, pki: DevPki, pin: str = PIN) -> CitySigner:
    settings = CitySignerSettings(module=module, token_label=LABEL, key_label="card",
                                  pin=pin)  # type: ignore[arg-type]
    stamper = HubTimeStamper(TsaConnector(TsaSettings(url=tsa.url), pki.trust_roots))
    return CitySigner(settings, stamper, trust_roots=(pki.root.certificate,))


async def test_city_signature_is_pades_b_lt_and_validates(module: str, tsa: ReferenceTsa,
                                                          pki: DevPki) -> None:
    result = await signer_on(module, tsa, pki).sign(make_pdf(20_000))
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
    assert_outside_agrees(result.pdf, pki.trust_roots, hub_accepts=True, signatures=1)


async def test_one_byte_edit_fails_revalidation(module: str, tsa: ReferenceTsa,
                                                pki: DevPki) -> None:
    signed = (await signer_on(module, tsa, pki).sign(make_pdf(5_000, "Contract R8-002"))).pdf
    at = signed.index(b"Contract R8-002")
    edited = signed[:at] + b"X" + signed[at + 1:]
    report = await async_validate_contract_pdf(edited, pki.trust_roots)
    assert not report.valid
    assert any("CON-5" in p for s in report.signatures for p in s.problems)
    assert_outside_agrees(edited, pki.trust_roots, hub_accepts=False)


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
    both = (await signer_on(module, tsa, pki).sign(out.getvalue())).pdf
    report = await async_validate_contract_pdf(both, pki.trust_roots)
    assert [s.field_name for s in report.signatures] == ["ContractorSignature", "CitySignature"]
    assert report.valid, report
    assert_outside_agrees(both, pki.trust_roots, hub_accepts=True, signatures=2)
    assert len(signature_timestamps(both)) == 2


async def test_signature_space_is_fixed_and_estimated_only_when_the_cms_does_not_fit(
        module: str, tsa: ReferenceTsa, pki: DevPki) -> None:
    from connectors.citysigner.signer import _RESERVED

    city = signer_on(module, tsa, pki)
    fixed = await city.sign(make_pdf(3_000))
    (sig,) = PdfFileReader(BytesIO(fixed.pdf)).embedded_signatures
    assert len(sig.sig_object["/Contents"]) * 2 == _RESERVED  # no dry-run size estimate
    city._reserved = 1_000  # smaller than any CMS with a chain and a timestamp token
    estimated = await city.sign(make_pdf(3_000))
    assert city._reserved is None  # from now on pyHanko estimates
    report = await async_validate_contract_pdf(estimated.pdf, pki.trust_roots)
    assert report.valid, report


async def test_timestamp_tokens_reach_pyhanko_unparsed(module: str, tsa: ReferenceTsa,
                                                       pki: DevPki) -> None:
    stamper = signer_on(module, tsa, pki).timestamper
    token = await stamper.async_timestamp(hashlib.sha256(b"contract").digest(), "sha256")
    # Loaded from its DER, not the connector's fully parsed (verified) object: asn1crypto
    # copies its bytes instead of re-encoding every level on each of pyHanko's dumps.
    assert token.children is None
    assert token["content"]["encap_content_info"]["content_type"].native == "tst_info"


async def test_wrong_pin_is_refused_without_showing_it(module: str, tsa: ReferenceTsa,
                                                        pki: DevPki) -> None:
    with pytest.raises(CitySignerError) as caught:
        await signer_on(module, tsa, pki, pin="999999").sign(make_pdf(3_000))
    assert "999999" not in str(caught.value)
    assert PIN not in repr(signer_on(module, tsa, pki))


# -- the embedded default: the city's key on a local SoftHSM2 token (no HUB_CITYSIGNER_PIN) ---

@pytest.fixture
def own_token_directory() -> Iterator[None]:
    """The local token switches this process's SOFTHSM2_CONF; put the module's back after."""
    before = os.environ.get("SOFTHSM2_CONF")
    yield
    if before is not None and os.environ.get("SOFTHSM2_CONF") != before:
        use_token_directory(Path(before).parent)


async def test_default_wiring_without_a_pin_signs_with_a_local_softhsm_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        own_token_directory: None) -> None:
    caplog.set_level(logging.DEBUG)
    run_dir = tmp_path / "run"
    local_pki = ensure_pki(run_dir / "pki")  # what the hub's embedded default uses
    monkeypatch.delenv("HUB_CITYSIGNER_PIN", raising=False)
    monkeypatch.setattr("hub.bootstrap.RUN_DIR", run_dir)
    with ReferenceTsa(local_pki) as tsa:
        monkeypatch.setenv("HUB_TSA_URL", tsa.url)
        monkeypatch.setenv("HUB_CONTRACT__JOB_INTERVAL_S", "0.5")
        wiring = default_wiring(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}"))
        contract_jobs = {j.name: j.interval_s for j in wiring.jobs if j.name.startswith("contract")}
        assert contract_jobs == {"contract-timeouts": 0.5}
        assert "contract.city-signer" in {c.name for c in wiring.consumers}  # a consumer
        signer = city_signer(run_dir)
        assert isinstance(signer, CitySigner)
        result = await signer.sign(make_pdf(6_000, "Contract R8-0700"))
        again = city_signer(run_dir)  # idempotent: the same token and PINs
        assert isinstance(again, CitySigner)
        second = await again.sign(result.pdf, field_name="Again")
        for close in wiring.closers:
            if inspect.isawaitable(closing := close()):
                await closing
        wiring.engine.dispose()
    assert "Hub Test City Signer" in result.signer_subject
    report = await async_validate_contract_pdf(second.pdf, local_pki.trust_roots)
    assert report.valid, report
    assert [s.field_name for s in report.signatures] == ["CitySignature", "Again"]
    pins = run_dir / "softhsm" / "pins.json"
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600
    for pin in json.loads(pins.read_text()).values():
        assert pin not in caplog.text
        assert pin not in repr(signer)
    assert str(run_dir / "softhsm") in caplog.text
    assert len(list((run_dir / "softhsm" / "tokens").iterdir())) == 1  # one token, reused


def test_without_softhsm_the_default_warns_how_to_install_and_runs_without_the_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("HUB_CITYSIGNER_PIN", raising=False)
    monkeypatch.setattr("connectors.citysigner.localtoken.MODULE_CANDIDATES",
                        (str(tmp_path / "no-such-libsofthsm2.so"),))
    assert city_signer(tmp_path) is None
    assert "deploy/setup.d/20-card.sh" in caplog.text
    assert not (tmp_path / "softhsm" / "pins.json").exists()
