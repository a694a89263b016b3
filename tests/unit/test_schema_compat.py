"""``hub schemas check`` (SCH-1): each kind of incompatible change fails, additive ones and
bumped versions pass. The schemas are pydantic's own output for real payload models."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from hub import schema_compat
from hub.cli import main
from schemas.envelope import envelope_class
from schemas.registry import Payload


class Kind(enum.StrEnum):
    WORKS = "works"
    GOODS = "goods"


class Kind2(enum.StrEnum):
    WORKS = "works"


class Before(Payload):
    case_id: str = Field(max_length=40)
    amount: int
    kind: Kind
    note: str | None = None
    lines: list[str] = Field(default_factory=list)


def _schema(model: type[Payload]) -> dict[str, Any]:
    return envelope_class(model).model_json_schema(mode="serialization")


def _released(model: type[Payload] = Before) -> dict[str, dict[str, Any]]:
    return {"test.thing.v1.json": _schema(model)}


def _problems(new_model: type[Payload], file_name: str = "test.thing.v1.json") -> list[str]:
    return [str(p) for p in schema_compat.check(_released(), {file_name: _schema(new_model)})]


def test_the_same_schema_passes() -> None:
    assert _problems(Before) == []


def test_an_additive_optional_field_passes() -> None:
    class Added(Before):
        remarks: str | None = None
        priority: int = 0

    assert _problems(Added) == []


def test_widened_types_and_a_new_enum_value_pass() -> None:
    class Kind3(enum.StrEnum):
        WORKS = "works"
        GOODS = "goods"
        SERVICES = "services"

    class Wider(Payload):
        case_id: str = Field(max_length=80)
        amount: int | str
        kind: Kind3
        note: str | None = None
        lines: list[str] = Field(default_factory=list)

    assert _problems(Wider) == []


def test_a_removed_field_fails() -> None:
    class Removed(Payload):
        case_id: str = Field(max_length=40)
        amount: int
        kind: Kind
        lines: list[str] = Field(default_factory=list)

    problems = _problems(Removed)
    assert len(problems) == 1
    assert problems[0].startswith("SCH-1 test.thing v1 $.payload.note")
    assert "field removed" in problems[0]


def test_a_field_made_required_fails() -> None:
    class Required(Payload):
        case_id: str = Field(max_length=40)
        amount: int
        kind: Kind
        note: str | None
        lines: list[str] = Field(default_factory=list)

    problems = _problems(Required)
    assert any("$.payload.note" in p and "made required" in p for p in problems), problems


def test_a_new_required_field_fails() -> None:
    class NewRequired(Before):
        entity: str

    assert [p for p in _problems(NewRequired) if "new required field" in p] == [
        "SCH-1 test.thing v1 $.payload.entity: new required field"]


@pytest.mark.parametrize("change", ["type", "nullable", "bound", "items"])
def test_a_narrowed_type_fails(change: str) -> None:
    fields: dict[str, Any] = {
        "type": {"amount": (str, ...)},
        "nullable": {"note": (str, "")},
        "bound": {"case_id": (str, Field(max_length=20))},
        "items": {"lines": (list[int], Field(default_factory=list))},
    }[change]
    from pydantic import create_model

    narrowed = create_model("Narrowed", __base__=Before, **fields)
    problems = _problems(narrowed)
    assert problems, f"narrowing {change} passed"
    path = {"type": "amount", "nullable": "note", "bound": "case_id", "items": "lines[]"}[change]
    assert any(f"$.payload.{path}" in p for p in problems), problems


def test_a_removed_enum_value_fails() -> None:
    class Fewer(Payload):
        case_id: str = Field(max_length=40)
        amount: int
        kind: Kind2
        note: str | None = None
        lines: list[str] = Field(default_factory=list)

    problems = _problems(Fewer)
    assert problems == ["SCH-1 test.thing v1 $.payload.kind: enum value removed: 'goods'"]


def test_a_literal_narrowed_fails() -> None:
    class Lit(Payload):
        mode: Literal["a", "b"]

    class LitFewer(Payload):
        mode: Literal["a"]

    problems = schema_compat.check({"t.v1.json": _schema(Lit)}, {"t.v1.json": _schema(LitFewer)})
    assert [str(p) for p in problems] == ["SCH-1 t v1 $.payload.mode: enum value removed: 'b'"]


def test_a_bumped_version_passes_and_a_vanished_message_fails() -> None:
    class Removed(Payload):
        amount: int

    # The incompatible shape under version 2 only: v1 is no longer produced.
    assert _problems(Removed, "test.thing.v2.json") == []
    # Gone without a later version: refused.
    gone = schema_compat.check(_released(), {"other.v1.json": _schema(Removed)})
    assert [str(p) for p in gone] == [
        "SCH-1 test.thing v1 $: the message is no longer registered and no later version of it is"]


def test_the_command_releases_checks_and_fails_on_a_change(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    released = tmp_path / "released"
    assert main(["schemas", "release", "0.1.0", "--released", str(released)]) == 0
    written = sorted(p.name for p in (released / "0.1.0").glob("*.json"))
    assert "registration.card-registration-requested.v1.json" in written
    assert len(written) == len(schema_compat.current_schemas())
    assert main(["schemas", "check", "--released", str(released)]) == 0
    with pytest.raises(FileExistsError):
        schema_compat.release("0.1.0", released)

    # A later release in which a real message had a field the code no longer has.
    later = released / "0.10.0"
    later.mkdir()
    for src in (released / "0.1.0").glob("*.json"):
        (later / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    target = later / "registration.card-registration-requested.v1.json"
    import json

    schema = json.loads(target.read_text(encoding="utf-8"))
    payload_ref = schema["properties"]["payload"]["$ref"].split("/")[-1]
    schema["$defs"][payload_ref]["properties"]["legacy_code"] = {"type": "string"}
    target.write_text(json.dumps(schema), encoding="utf-8")
    assert schema_compat.latest_release(released) == later
    capsys.readouterr()
    assert main(["schemas", "check", "--released", str(released)]) == 1
    err = capsys.readouterr().err
    assert ("SCH-1 registration.card-registration-requested v1 $.payload.legacy_code: field removed"
            in err)
    assert "schema_version" in err
    assert "版" in err


def test_the_repository_keeps_a_release_and_the_schemas_are_compatible_with_it() -> None:
    latest = schema_compat.latest_release()
    assert latest is not None, "schemas/released holds no release: run `hub schemas release`"
    assert [str(p) for p in schema_compat.check(latest)] == []


def test_a_pattern_gaining_alternatives_passes_any_other_pattern_change_fails() -> None:
    def schema(pattern: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"rule_id": {"type": "string",
                                                              "pattern": pattern}}}

    old = schema(r"^(REG|CHG|SUR)-\d{1,2}$")
    assert schema_compat.compare(old, schema(r"^(REG|CHG|SUR|EDGE)-\d{1,2}$")) == []
    for narrowed in (r"^(REG|CHG)-\d{1,2}$", r"^(REG|CHG|SUR)-\d{1}$", r"^(REG|CHG|SUR|X)-\d$"):
        problems = schema_compat.compare(old, schema(narrowed), message="m v1")
        assert [p.path for p in problems] == ["$.rule_id"], narrowed
        assert "pattern changed" in problems[0].change
