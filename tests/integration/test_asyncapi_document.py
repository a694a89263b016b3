"""The AsyncAPI document ``hub docs`` writes is valid against the AsyncAPI Initiative's
own JSON Schema for AsyncAPI 3.0.0 (vendored in tests/data/asyncapi/), not only against
what FastStream meant to write."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

from tests.support.outside_validators import asyncapi_problems

ROOT = Path(__file__).resolve().parents[2]


def test_hub_docs_writes_a_valid_asyncapi_3_document(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hub.cli", "docs", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert asyncapi_problems(document) == []
    assert len(document["channels"]) >= 10
    broken = copy.deepcopy(document)
    del broken["info"]["title"]
    first = next(iter(broken["channels"].values()))
    first["address"] = 42
    problems = asyncapi_problems(broken)
    assert problems, "the schema accepts a document without info.title"
