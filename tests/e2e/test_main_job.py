"""The README's first command: `hub demo` runs the main job end to end and says what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hubproc import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.slow]


def test_hub_demo_pushes_the_sample_case_through_every_part(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    env = {**os.environ, "HUB_RUN_DIR": str(tmp_path), "HUB_KAFKA__BOOTSTRAP_SERVERS":
           kafka_bootstrap, "HUB_KAFKA__GROUP_PREFIX": f"demo-{tmp_path.name}"}
    done = subprocess.run([sys.executable, "-m", "hub.cli", "demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    for expected in ("registration.card-registered", "registration.contact-changed",
                     "registration.card-renewed", "registration.card-revoked",
                     "registration.rejected", "surety.certificate-fetched",
                     "erp.registered", "mail.sent", "「利用者登録のお知らせ」",
                     "「ICカード更新のお知らせ」", "duplicate=True"):
        assert expected in out, f"{expected} missing from:\n{out[-3000:]}"
    assert (tmp_path / "hub.db").exists()  # the embedded default: a SQLite file
