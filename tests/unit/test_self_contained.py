"""The repository stands on its own: it cites no file outside itself and no machine's path,
and every rule ID the code cites is explained in docs/rule-ids.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".json", ".yaml", ".yml", ".j2",
                  ".ini", ".cfg", ".mako", ".csv", ""}
# Spelled in pieces so that this file does not cite them itself.
_OUTSIDE = re.compile("|".join(re.escape(s) for s in (
    "DOMAIN" + ".md", "DESIGN" + ".md", "STYLE" + ".md", "/" + "work/", "../" + "shared")))
_RULE_ID = re.compile(r"\b(?:REG|CHG|RNW|PIN|WIN|SUR|CON|INV|NTF|IAM)-\d{1,2}\b")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    files = []
    for name in names:
        path = ROOT / name
        if path.suffix in _TEXT_SUFFIXES and path.is_file() and path.stat().st_size < 2_000_000:
            files.append(path)
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def test_no_file_cites_anything_outside_the_repository() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in _tracked_text_files()
             for n, line in enumerate(_read(p).splitlines(), 1) if _OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def test_every_rule_id_cited_is_explained() -> None:
    explained = set(_RULE_ID.findall((ROOT / "docs" / "rule-ids.md").read_text()))
    cited: dict[str, str] = {}
    for path in _tracked_text_files():
        if path.parts[-2:] == ("docs", "rule-ids.md"):
            continue
        for rule in _RULE_ID.findall(_read(path)):
            cited.setdefault(rule, str(path.relative_to(ROOT)))
    missing = {rule: where for rule, where in cited.items() if rule not in explained}
    assert not missing, f"rule IDs cited but not in docs/rule-ids.md: {missing}"
