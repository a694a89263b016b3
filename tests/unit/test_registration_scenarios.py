"""The scenario runner (``hub rules evaluate FILE.json``): the documented examples in
docs/scenarios/ give the decisions they promise, and bad files get a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.registration.scenario import ScenarioError, evaluate, main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "docs" / "scenarios").glob("*.json"))


def test_there_are_documented_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_documented_example_gives_its_decision(path: Path) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    answer = evaluate(scenario, base=path.parent)
    assert answer["decision"] == scenario["expect"]["decision"]
    assert answer["rule_ids"] == scenario["expect"]["rule_ids"]


def test_main_prints_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    path = next(p for p in EXAMPLES if p.stem == "reject-card-of-other-user")
    assert main([str(path)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["decision"] == "rejected"
    assert answer["violations"][0]["message_ja"].startswith("このICカードは既に登録されています")


def test_main_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main([str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"now": "2026-11-24T10:00:00", "command": {}}), encoding="utf-8")
    assert main([str(bad)]) == 2
    assert "zone" in capsys.readouterr().err


def test_scenario_errors_name_the_part() -> None:
    with pytest.raises(ScenarioError, match="command: type must be one of"):
        evaluate({"now": "2026-11-24T10:00:00+09:00",
                  "command": {"type": "mail.requested", "payload": {}}})
    with pytest.raises(ScenarioError, match="policy"):
        evaluate({"policy": 3, "now": "2026-11-24T10:00:00+09:00"})


def test_invalid_command_is_an_answer_not_an_error() -> None:
    answer = evaluate({"now": "2026-11-24T10:00:00+09:00", "command": {
        "type": "registration.card-registration-requested", "payload": {"user_id": "1"}}})
    assert answer["decision"] == "rejected"
    assert "REG-7" in answer["rule_ids"]
    assert answer["events"] == []
