"""Schema compatibility: ``hub schemas release`` and ``hub schemas check``.

Every released set of message schemas is kept in the repository, one JSON Schema per
message and version (what ``hub docs`` writes), in ``schemas/released/<release>/``. The
check compares each message of the newest release with the same message and version
now. A consumer written against a release must still read every message produced
afterwards under the same ``schema_version``, so these are refused (rule SCH-1):

- a field removed (the payloads forbid unknown fields: readers of the release refuse it),
- a field made required, or a new required field,
- a type narrowed: a JSON type, an ``anyOf`` branch or a ``const`` dropped, a bound
  tightened (``minLength``, ``maxLength``, ``minimum``, ``maximum``, ``minItems``,
  ``maxItems``, ...), a ``pattern`` or ``format`` changed, extra properties forbidden,
- an enum value removed,
- a released message gone with no later version.

A change like that is allowed once the message's version is bumped
(``@message("type", N + 1)``): the released version is then no longer produced, and
readers tell the versions apart by ``x-schema-version``. Additive changes (a new optional
field, a new message, a widened type, a new enum value) pass. Each problem names the
message, the JSON path and what changed.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RELEASED_DIR",
    "Problem",
    "check",
    "compare",
    "current_schemas",
    "latest_release",
    "release",
]

RULE = "SCH-1"
RELEASED_DIR = Path(__file__).resolve().parents[1] / "schemas" / "released"
_NAME = re.compile(r"^(?P<type>.+)\.v(?P<version>\d+)\.json$")

_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_EXACT = ("pattern", "format", "multipleOf")


@dataclass(frozen=True)
class Problem:
    """One backward-incompatible change of one released message."""

    message: str
    """``type vN`` of the released message."""
    path: str
    """Where in the schema, as a JSON path from the envelope (``$.payload.amount``)."""
    change: str

    def __str__(self) -> str:
        return f"{RULE} {self.message} {self.path}: {self.change}"


def current_schemas() -> dict[str, dict[str, Any]]:
    """Every registered message's JSON Schema now, by file name (``type.vN.json``).

    Imports every module of the ``schemas`` package first, so the set does not depend on
    what the caller happened to import; messages declared elsewhere (tests, a plugin's
    own package) are not the hub's contracts and are left out."""
    import schemas
    from schemas.envelope import envelope_class
    from schemas.registry import REGISTRY

    for module in pkgutil.walk_packages(schemas.__path__, "schemas."):
        importlib.import_module(module.name)
    out: dict[str, dict[str, Any]] = {}
    for (message_type, version), payload in REGISTRY:
        if not payload.__module__.startswith("schemas."):
            continue
        schema = envelope_class(payload).model_json_schema(mode="serialization")
        schema["title"] = f"{message_type} v{version}"
        out[f"{message_type}.v{version}.json"] = schema
    return out


def _release_key(name: str) -> tuple[Any, ...]:
    """Natural order of release names: 0.10.0 after 0.9.1."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", name))


def latest_release(released_dir: Path = RELEASED_DIR) -> Path | None:
    if not released_dir.is_dir():
        return None
    releases = [p for p in released_dir.iterdir() if p.is_dir() and any(p.glob("*.json"))]
    return max(releases, key=lambda p: _release_key(p.name), default=None)


def release(name: str, released_dir: Path = RELEASED_DIR,
            schemas: Mapping[str, dict[str, Any]] | None = None) -> Path:
    """Write the current schemas as release ``name`` (refuses to overwrite one)."""
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.\-]*", name):
        raise ValueError(f"release name {name!r}: use letters, digits, dots and dashes")
    target = released_dir / name
    if target.exists():
        raise FileExistsError(f"release {name} exists already ({target}); releases are kept "
                              "as they were published")
    target.mkdir(parents=True)
    for file_name, schema in sorted((schemas or current_schemas()).items()):
        (target / file_name).write_text(json.dumps(schema, ensure_ascii=False, indent=2,
                                                   sort_keys=True) + "\n", encoding="utf-8")
    return target


def _load(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(directory.glob("*.json"))}


def check(released: Mapping[str, dict[str, Any]] | Path,
          current: Mapping[str, dict[str, Any]] | None = None) -> list[Problem]:
    """The backward-incompatible changes from ``released`` (a release directory or its
    schemas by file name) to ``current`` (default: the registered messages now)."""
    old_set = _load(released) if isinstance(released, Path) else dict(released)
    new_set = dict(current) if current is not None else current_schemas()
    versions: dict[str, list[int]] = {}
    for file_name in new_set:
        if m := _NAME.match(file_name):
            versions.setdefault(m["type"], []).append(int(m["version"]))
    problems: list[Problem] = []
    for file_name, old in sorted(old_set.items()):
        m = _NAME.match(file_name)
        if m is None:
            continue
        label = f"{m['type']} v{m['version']}"
        new = new_set.get(file_name)
        if new is None:
            if not any(v > int(m["version"]) for v in versions.get(m["type"], ())):
                problems.append(Problem(label, "$", "the message is no longer registered and "
                                        "no later version of it is"))
            continue
        problems.extend(compare(old, new, message=label))
    return problems


def compare(old: dict[str, Any], new: dict[str, Any], *, message: str = "") -> list[Problem]:
    """What ``new`` refuses that ``old`` accepted (one message's two schemas)."""
    return list(_Diff(old, new, message).node(old, new, "$"))


class _Diff:
    def __init__(self, old_root: dict[str, Any], new_root: dict[str, Any], message: str) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.message = message
        self._seen: set[tuple[str, str, str]] = set()

    def _problem(self, path: str, change: str) -> Problem:
        return Problem(self.message, path, change)

    @staticmethod
    def _resolve(root: dict[str, Any], node: Any) -> Any:
        hops = 0
        while isinstance(node, dict) and "$ref" in node and hops < 64:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                break
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra} if extra else target
            hops += 1
        return node

    def node(self, old: Any, new: Any, path: str) -> Iterable[Problem]:
        if isinstance(old, dict) and isinstance(new, dict):
            key = (path, json.dumps(old.get("$ref")), json.dumps(new.get("$ref")))
            if "$ref" in old or "$ref" in new:
                if key in self._seen:  # a recursive definition: compared once
                    return
                self._seen.add(key)
        old = self._resolve(self.old_root, old)
        new = self._resolve(self.new_root, new)
        if old is True or old == {}:
            if new is not True and new != {}:
                yield self._problem(path, "accepted anything, now restricted")
            return
        if new is True or new == {}:
            return  # accepts anything now
        if new is False:
            yield self._problem(path, "accepts nothing now")
            return
        if not isinstance(old, dict) or not isinstance(new, dict):
            return
        old_branches = old.get("anyOf") or old.get("oneOf")
        new_branches = new.get("anyOf") or new.get("oneOf")
        if old_branches or new_branches:
            yield from self._branches(old, new, old_branches or [old],
                                      new_branches or [new], path)
            return
        yield from self._types(old, new, path)
        yield from self._values(old, new, path)
        yield from self._bounds(old, new, path)
        yield from self._object(old, new, path)
        if "items" in old or "items" in new:
            yield from self.node(old.get("items", True), new.get("items", True), f"{path}[]")

    def _branches(self, old: dict[str, Any], new: dict[str, Any], old_branches: list[Any],
                  new_branches: list[Any], path: str) -> Iterable[Problem]:
        """Every old branch must still be accepted by some new branch."""
        shared = {k: v for k, v in old.items() if k not in ("anyOf", "oneOf")}
        shared_new = {k: v for k, v in new.items() if k not in ("anyOf", "oneOf")}
        for old_branch in old_branches:
            branch = {**shared, **self._resolve(self.old_root, old_branch)} \
                if old.get("anyOf") or old.get("oneOf") else old_branch
            best: list[Problem] | None = None
            for new_branch in new_branches:
                candidate = {**shared_new, **self._resolve(self.new_root, new_branch)} \
                    if new.get("anyOf") or new.get("oneOf") else new_branch
                if not _may_match(branch, candidate, self.old_root, self.new_root):
                    continue
                found = list(self.node(branch, candidate, path))
                if best is None or len(found) < len(best):
                    best = found
                if not found:
                    break
            if best is None:
                yield self._problem(path, f"no longer accepts {_describe(branch)}")
            else:
                yield from best

    def _types(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterable[Problem]:
        old_t, new_t = _types(old), _types(new)
        if old_t is None or new_t is None:
            if new_t is not None and old_t is None:
                yield self._problem(path, f"any type before, now only {sorted(new_t)}")
            return
        lost = {t for t in old_t - new_t if not (t == "integer" and "number" in new_t)}
        if lost:
            yield self._problem(path, f"type narrowed: {sorted(lost)} no longer accepted")

    def _values(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterable[Problem]:
        old_values = _allowed(old)
        new_values = _allowed(new)
        if new_values is None:
            return
        if old_values is None:
            yield self._problem(path, f"any value before, now only {_short(new_values)}")
            return
        removed = [v for v in old_values if v not in new_values]
        if removed:
            yield self._problem(path, f"enum value removed: {_short(removed)}")

    def _bounds(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterable[Problem]:
        for key in _LOWER_BOUNDS:
            if key in new and (key not in old or new[key] > old[key]):
                yield self._problem(path, f"{key} raised: {old.get(key)} → {new[key]}")
        for key in _UPPER_BOUNDS:
            if key in new and (key not in old or new[key] < old[key]):
                yield self._problem(path, f"{key} lowered: {old.get(key)} → {new[key]}")
        for key in _EXACT:
            if key in new and old.get(key) != new[key] and not (
                    key == "pattern" and key in old and _pattern_widened(old[key], new[key])):
                yield self._problem(path, f"{key} changed: {old.get(key)!r} → {new[key]!r}")

    def _object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> Iterable[Problem]:
        old_props: dict[str, Any] = old.get("properties") or {}
        new_props: dict[str, Any] = new.get("properties") or {}
        if not old_props and not new_props and "required" not in new:
            return
        old_required = set(old.get("required") or ())
        closed = new.get("additionalProperties") is False
        for name in sorted(old_props):
            if name not in new_props:
                yield self._problem(f"{path}.{name}", "field removed")
                continue
            yield from self.node(old_props[name], new_props[name], f"{path}.{name}")
        for name in sorted(set(new.get("required") or ()) - old_required):
            what = "field made required" if name in old_props else "new required field"
            yield self._problem(f"{path}.{name}", what)
        if old.get("additionalProperties") is not False and closed:
            yield self._problem(path, "extra properties forbidden now")


_ALTERNATION = re.compile(r"\(((?:\?:)?)([A-Za-z0-9_]+(?:\|[A-Za-z0-9_]+)+)\)")


def _pattern_widened(old: str, new: str) -> bool:
    """``new`` is ``old`` with words added to its alternations, e.g. ``^(REG|SUR)-\\d$`` →
    ``^(REG|SUR|EDGE)-\\d$``; any other change of a pattern counts as narrowing."""
    old_groups = [set(m.group(2).split("|")) for m in _ALTERNATION.finditer(old)]
    new_groups = [set(m.group(2).split("|")) for m in _ALTERNATION.finditer(new)]
    skeleton = _ALTERNATION.sub(r"(\1…)", old), _ALTERNATION.sub(r"(\1…)", new)
    return (bool(old_groups) and skeleton[0] == skeleton[1]
            and len(old_groups) == len(new_groups)
            and all(o <= n for o, n in zip(old_groups, new_groups, strict=True)))


def _types(schema: dict[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else schema["enum"]
            return {_json_type(v) for v in values}
        return None
    return {t} if isinstance(t, str) else set(t)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _allowed(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _may_match(old: Any, new: Any, old_root: dict[str, Any], new_root: dict[str, Any]) -> bool:
    """Could ``new`` be the branch that stands for ``old`` (their types meet)?"""
    old = _Diff._resolve(old_root, old)
    new = _Diff._resolve(new_root, new)
    if not isinstance(old, dict) or not isinstance(new, dict):
        return True
    old_t, new_t = _types(old), _types(new)
    if old_t is None or new_t is None:
        return True
    return bool(old_t & new_t) or ("integer" in old_t and "number" in new_t)


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        if "const" in schema:
            return f"the value {schema['const']!r}"
        if "type" in schema:
            return f"type {schema['type']}"
        if "title" in schema:
            return str(schema["title"])
    return "a form it accepted"


def _short(values: list[Any]) -> str:
    text = ", ".join(repr(v) for v in values[:8])
    return text + (", ..." if len(values) > 8 else "")
