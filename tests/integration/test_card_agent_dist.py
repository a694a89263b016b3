"""The card agent is its own distribution (card_agent/pyproject.toml): its wheel holds the
agent only, and installed into a fresh virtualenv it brings none of the hub's
dependencies, yet its command and service import and run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HUB_ONLY = {"faststream", "aiokafka", "psycopg", "psycopg-binary", "zeep", "sqlmodel",
            "sqlalchemy", "fastapi", "uvicorn", "pydantic", "alembic", "saxonche",
            "procurement-hub"}

pytestmark = pytest.mark.slow


def _run(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_agent_wheel_installs_alone_without_the_hub(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # Built from a copy: pip builds a local directory in place (build/, *.egg-info).
    source = tmp_path / "card_agent"
    shutil.copytree(ROOT / "card_agent", source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    # The agent's wheel and a wheelhouse of what it needs (pip's cache or the index).
    _run(sys.executable, "-m", "pip", "wheel", "-q", "-w", wheels, source)
    agent = next(wheels.glob("procurement_card_agent-*.whl"))
    names = zipfile.ZipFile(agent).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"card_agent"}
    assert "card_agent/serve.py" in names
    assert "card_agent/py.typed" in names
    assert not any(n.startswith("card_agent/pyproject") for n in names)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
         "procurement-card-agent")
    installed = {p["name"].lower()
                 for p in json.loads(_run(python, "-m", "pip", "list", "--format=json"))}
    assert "procurement-card-agent" in installed
    assert installed & HUB_ONLY == set()
    # Imports nothing of the hub: the whole agent loads in the bare venv.
    _run(python, "-c", "import card_agent.cli, card_agent.serve, card_agent.pcsc, "
         "card_agent.document, card_agent.tsa")
    assert "serve" in _run(venv / "bin" / "card-agent", "--help")
