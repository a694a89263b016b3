"""``hub connector new``: the package it writes passes its own tests (mapping and the
connector contract) at once, and the contract catches a connector that breaks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import main
from hub.scaffold import ScaffoldError, write_connector


def _pytest(package: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=package, env=env, capture_output=True, text=True, timeout=600,
                          check=False)


def test_the_scaffold_passes_its_own_tests(tmp_path: Path) -> None:
    assert main(["connector", "new", "rec-keeper", "--dir", str(tmp_path)]) == 0
    package = tmp_path / "rec-keeper"
    modules = {p.name for p in (package / "hub_connector_rec_keeper").iterdir()}
    assert {"settings.py", "adapter.py", "mapping.py", "connector.py", "peer.py",
            "effects.py", "plugin.py", "messages.py"} <= modules
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."procurement_hub.connectors"]' in pyproject
    assert 'rec-keeper = "hub_connector_rec_keeper.plugin:PLUGIN"' in pyproject
    run = _pytest(package)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 passed" in run.stdout


def test_the_contract_fails_a_connector_that_ignores_maintenance_and_garbage(
        tmp_path: Path) -> None:
    package = write_connector("careless", tmp_path)
    adapter = package / "hub_connector_careless" / "adapter.py"
    text = adapter.read_text()
    assert '        raise_for_peer(NAME, "store", response)\n' in text
    adapter.write_text(text.replace('        raise_for_peer(NAME, "store", response)\n', ""))
    run = _pytest(package)
    assert run.returncode == 1
    assert "test_contract_announced_maintenance_holds FAILED" in run.stdout or \
        "FAILED tests/test_contract.py::TestCarelessContract::" \
        "test_contract_announced_maintenance_holds" in run.stdout, run.stdout


def test_a_bad_name_or_a_used_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="lower-case"):
        write_connector("Bad_Name", tmp_path)
    write_connector("taken", tmp_path)
    with pytest.raises(ScaffoldError, match="not empty"):
        write_connector("taken", tmp_path)
