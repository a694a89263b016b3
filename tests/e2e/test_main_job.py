"""The README's first command: `hub demo` carries one complete case through every real part.

Kafka, a SQLite file, the six reference peers, the hub with every pipeline, the card
agent with the virtual IC card in pcscd's vpcd reader, and the city's signer on SoftHSM2:
registration, 申出書, 契約保証 accepted, both signatures, conclusion, the ERP 契約登録,
the mails, and 前払金保証 completing the advance-payment request. The signed PDF the demo
names is validated again here, independently of the demo's own report.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from connectors.citysigner import async_validate_contract_pdf
from devkit.pki import ensure_pki
from tests.card.fixtures import require_vpcd
from tests.support.hubproc import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.slow, pytest.mark.pcsc,
              pytest.mark.softhsm, pytest.mark.tsa, pytest.mark.smtp, pytest.mark.soap]


def test_hub_demo_carries_one_case_from_registration_to_advance_payment(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    require_vpcd()
    env = {**os.environ, "HUB_RUN_DIR": str(tmp_path), "HUB_KAFKA__BOOTSTRAP_SERVERS":
           kafka_bootstrap,  # new groups, so they start at the topics' end
           "HUB_KAFKA__GROUP_PREFIX": f"demo-{uuid.uuid4().hex[:12]}"}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    for expected in ("registration.card-registered", "case.registered",
                     "status=applied", "surety.accepted", "product=performance",
                     "econtract.review-link-sent", "status=contractor-signed",
                     "status=city-agreed", "econtract.concluded", "(2/2 agreed)",
                     "kind=contract", "kind=advance-payment", "product=advance-payment",
                     "「電子契約の確認依頼", "「電子契約締結のお知らせ", "「利用者登録のお知らせ」",
                     "valid=True (2 signatures)"):
        assert expected in out, f"{expected} missing from:\n{out[-4000:]}"
    assert out.count("erp.registered") == 2, out[-4000:]
    found = re.search(r"Signed contract: (\S+\.pdf)", out)
    assert found, out[-3000:]
    pdf = Path(found.group(1)).read_bytes()
    report = asyncio.run(async_validate_contract_pdf(pdf, ensure_pki(tmp_path / "pki")
                                                     .trust_roots))
    assert report.valid, report
    assert [s.field_name for s in report.signatures] == ["ContractorSignature", "CitySignature"]
    assert all(s.timestamped_at is not None for s in report.signatures)
    assert (tmp_path / "hub.db").exists()  # the embedded default: a SQLite file
    assert_only_documented_warnings(done.stdout + done.stderr)


# The demo's own notes on what is for testing only (README, "Two commands"); anything
# else at WARNING or ERROR, or a Python warning, is noise a newcomer takes for a failure.
_TEST_ONLY_NOTES = re.compile(
    r"^WARNING hub\.(bootstrap|staff): .*(test PKI|SoftHSM2 token|staff API token is in)")
_ALARMING = re.compile(r"^(WARNING|ERROR|CRITICAL)\b|Warning: |Traceback")


def assert_only_documented_warnings(output: str) -> None:
    alarming = [line for line in output.splitlines()
                if _ALARMING.search(line) and not _TEST_ONLY_NOTES.search(line)]
    assert not alarming, "the demo printed:\n" + "\n".join(alarming)


def test_the_demo_output_check_catches_noise() -> None:
    assert_only_documented_warnings(
        "WARNING hub.staff: staff: no HUB_STAFF__TOKEN_SHA256; the staff API token is in x")
    for noise in ("WARNING hub.kafka: Auto create topics is disabled.",
                  "ERROR aiokafka.consumer.group_coordinator: Group Coordinator Request failed",
                  "/x/pdf_cms.py:20: CryptographyDeprecationWarning: DSA is deprecated"):
        with pytest.raises(AssertionError):
            assert_only_documented_warnings(noise)
