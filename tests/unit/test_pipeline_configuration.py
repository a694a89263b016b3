"""The pipelines take their configuration from the hub's wiring, never from the process:
no environment read and no module global set at start-up (hub/bootstrap.py builds their
handlers from what they depend on)."""

from __future__ import annotations

import ast
from pathlib import Path

from hub.bootstrap import registration_consumer
from hub.contract.wiring import consumers as contract_consumers
from pipelines.contract.handlers import ContractHandlers
from pipelines.contract.state import ContractPolicy
from pipelines.registration.handlers import MESSAGE_TYPES, RegistrationHandlers
from pipelines.registration.policy import default_policy_book

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
CACHES = {("invoices/gate.py", "_gate")}
"""Module globals that only cache what every configuration shares (the gate's worker)."""


def _findings(root: Path = PIPELINES) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                found += [f"{where}: global {name}" for name in node.names
                          if (where, name) not in CACHES]
            elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{where}:{node.lineno}: os.{node.attr}")
    return found


def test_no_pipeline_reads_the_environment_or_sets_a_module_global() -> None:
    assert _findings() == []


def test_the_finder_sees_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os\n_x = None\n\ndef f():\n    global _x\n"
                                     "    _x = os.environ.get('HUB_X')\n", encoding="utf-8")
    assert _findings(tmp_path) == ["bad.py: global _x", "bad.py:6: os.environ"]


def test_the_handlers_decide_with_what_they_were_built_with() -> None:
    book = default_policy_book()
    pipeline = RegistrationHandlers(book)
    assert pipeline.book is book
    assert set(pipeline.handlers) == set(MESSAGE_TYPES)
    assert registration_consumer(book).prepare is not None
    policy = ContractPolicy(review_base_url="https://hub.example/contract/review")
    (spec,) = contract_consumers(policy=policy)
    handler = next(iter(spec.handlers.values()))
    owner = getattr(handler, "__self__", None)
    assert isinstance(owner, ContractHandlers)
    assert owner.policy is policy
    assert owner.signing_jobs is not None  # the card gateway's, always wired
