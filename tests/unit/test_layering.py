"""The dependency direction of the layout (README): ``schemas`` <- ``pipelines``, ``connectors``
<- ``hub``, and ``card_agent`` <- ``hub``. The card agent is its own distribution
(card_agent/pyproject.toml), installed on contractors' PCs without the hub's dependencies,
so it imports none of the other packages (it owns its wire constants). Every module of the
lower packages is parsed with :mod:`ast` (imports inside functions and ``TYPE_CHECKING``
blocks count too) and the test names the module that imports upwards.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN: dict[str, frozenset[str]] = {
    "schemas": frozenset({"pipelines", "connectors", "card_agent", "hub"}),
    "pipelines": frozenset({"hub"}),
    "connectors": frozenset({"hub"}),
    "card_agent": frozenset({"hub", "pipelines", "connectors", "schemas"}),
}


def imported_packages(source: str, module: str) -> set[str]:
    """Top-level packages ``source`` imports (absolute, or relative resolved from ``module``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within the module's own top-level package
                found.add(module.split(".", maxsplit=1)[0])
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def upward_imports(package: str) -> list[str]:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        bad = imported_packages(path.read_text(encoding="utf-8"), module) & FORBIDDEN[package]
        wrong.extend(f"{module} imports {name}" for name in sorted(bad))
    return wrong


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upwards(package: str) -> None:
    assert (ROOT / package).is_dir()
    assert upward_imports(package) == []


def test_the_check_sees_every_form_of_import() -> None:
    source = ("import hub\nimport hub.outbox as o\nfrom hub.consumers import ConsumerSpec\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hub import x\n"
              "def f():\n    from connectors import y\n")
    assert imported_packages(source, "pipelines.a") == {"hub", "typing", "connectors"}
    assert imported_packages("from . import sibling\n", "schemas.a") == {"schemas"}
