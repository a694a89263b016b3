"""The console's words: every key a template asks for exists, in both languages, with the
same placeholders; every contract status has its label."""

from __future__ import annotations

import re
import string
from pathlib import Path

from hub.console.texts import STATUS, WORDS
from hub.console.views import _KIND
from schemas.contract import ContractStatus

TEMPLATES = Path(__file__).resolve().parents[2] / "hub" / "console" / "templates"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_word_has_both_languages_with_the_same_placeholders() -> None:
    for key, (ja, en) in WORDS.items():
        assert ja.strip(), key
        assert en.strip(), key
        assert _fields(ja) == _fields(en), key


def test_every_key_the_templates_use_exists() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.j2"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""",
                                  path.read_text("utf-8")))
    assert used, "no t(...) found: the pattern no longer matches the templates"
    assert sorted(used - set(WORDS)) == []
    # registrations.html.j2 names a decision's kind as t("kind_" + kind)
    assert sorted({f"kind_{k}" for k in _KIND.values()} - set(WORDS)) == []
    # connectors.html.j2 names the step's words as t("connector_..." + step)
    steps = {f"connector_{w}_{s}" for w in ("confirm", "warning", "do")
             for s in ("pause", "resume")} | {"connector_paused", "connector_resumed"}
    assert sorted(steps - set(WORDS)) == []
    held = {f"held_{w}_{s}" for w in ("confirm", "warning", "do", "done")
            for s in ("confirm", "reject")}
    assert sorted(held - set(WORDS)) == []


def test_every_contract_status_has_a_label() -> None:
    assert set(STATUS) == set(ContractStatus)
