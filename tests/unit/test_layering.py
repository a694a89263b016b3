"""The dependency direction of the layout (README): ``schemas`` <- ``storage`` <-
``pipelines``, ``connectors`` <- ``hub``, and ``card_agent`` <- ``hub``. ``storage`` (database
helpers without business rules) serves the pipelines' stores and the hub alike. The card
agent is its own distribution (card_agent/pyproject.toml), installed on contractors' PCs
without the hub's dependencies, so it imports none of the other packages (it owns its wire
constants). ``devkit`` (the test PKI) imports none of them either, and of the production
packages only the demo and development paths and the reference peers import it. Every
module is parsed with :mod:`ast` (imports inside functions and ``TYPE_CHECKING`` blocks
count too) and the test names the module that imports where it must not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_OURS = frozenset({"schemas", "storage", "pipelines", "connectors", "card_agent", "hub",
                   "devkit"})
FORBIDDEN: dict[str, frozenset[str]] = {
    "schemas": _OURS - {"schemas"},
    "storage": frozenset({"pipelines", "connectors", "card_agent", "hub", "devkit"}),
    "pipelines": frozenset({"hub", "card_agent", "devkit"}),
    "connectors": frozenset({"hub", "card_agent"}),
    "card_agent": _OURS - {"card_agent"},
    "devkit": _OURS - {"devkit"},
}

DEVKIT_USERS = frozenset({
    "connectors.citysigner.localtoken",  # the embedded default's SoftHSM2 token
    "connectors.tsa.peer",  # the reference TSA
    "hub.bootstrap",  # the embedded default's wiring, inside the functions that build it
    "hub.demo",
    "hub.sample.driver",  # the demo's sample cases
})
"""The only production modules that import the test PKI."""


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


def test_only_the_demo_and_development_paths_use_the_test_pki() -> None:
    users = set()
    for package in ("schemas", "storage", "pipelines", "connectors", "hub"):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if "devkit" in imported_packages(path.read_text(encoding="utf-8"), module):
                users.add(module)
    assert users <= DEVKIT_USERS
    assert not (ROOT / "connectors" / "devpki.py").exists()
    assert not (ROOT / "pipelines" / "bulk.py").exists()


def test_the_check_sees_every_form_of_import() -> None:
    source = ("import hub\nimport hub.outbox as o\nfrom hub.consumers import ConsumerSpec\n"
              "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hub import x\n"
              "def f():\n    from connectors import y\n")
    assert imported_packages(source, "pipelines.a") == {"hub", "typing", "connectors"}
    assert imported_packages("from . import sibling\n", "schemas.a") == {"schemas"}
