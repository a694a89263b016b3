"""The official JP PINT rules as a gate (INV-4): OpenPeppol's compiled Schematron, run by Saxon.

Every incoming JP PINT invoice goes through the two stylesheets of the vendored JP PINT
resource package (``jp_pint/``, version in ``jp_pint/MANIFEST.json``): the PINT rules
shared by every jurisdiction (``ibr-*``) and the Japanese aligned rules (``aligned-ibr*-jp``).
Each failed assertion of the SVRL report becomes a :class:`GateFinding` with the official
rule ID, its flag and its text; :func:`gate_violations` makes them INV-4 violations.
A ``fatal`` finding rejects the invoice; a ``warning`` is recorded with the acceptance.
A document the stylesheets cannot evaluate (a dynamic XPath error, e.g. an amount
``2.8E5`` that is no xs:decimal) is one fatal finding, :data:`UNEVALUABLE`.

The stylesheets are XSLT 2.0, so they run on SaxonC-HE (``saxonche``). They are compiled
once per process, on first use, and kept; Saxon's processor serves one thread at a time
here (a lock), which is what one consumer needs. The document reaching the gate has
already been parsed by the hardened reader (:mod:`.ubl`): it has no DTD and no entity.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from schemas.rejection import RuleViolation

__all__ = ["RULES_DIR", "UNEVALUABLE", "GateFinding", "gate_violations", "jp_pint_version",
           "run_gate"]

RULES_DIR = Path(__file__).with_name("jp_pint")
_SVRL = "{http://purl.oclc.org/dsdl/svrl}"
_LOCK = threading.Lock()
Flag = Literal["fatal", "warning", "information"]
UNEVALUABLE = "pint-evaluation"
"""The finding's rule when the official rules could not evaluate the document at all."""


@dataclass(frozen=True)
class GateFinding:
    """One failed assertion of the official rules."""

    rule: str
    flag: Flag
    text: str
    location: str


@cache
def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RULES_DIR / "MANIFEST.json").read_text("utf-8"))
    return data


def jp_pint_version() -> str:
    """The version of the vendored JP PINT resource package, e.g. ``1.1.3``."""
    return str(_manifest()["version"])


class _Saxon:
    """The Saxon processor and the compiled stylesheets, made once per process."""

    def __init__(self) -> None:
        from saxonche import PySaxonProcessor  # a native library: loaded on first use only

        self.processor = PySaxonProcessor(license=False)
        compiler = self.processor.new_xslt30_processor()
        self.executables = [compiler.compile_stylesheet(stylesheet_file=str(RULES_DIR / name))
                            for name in _manifest()["stylesheets"]]

    def reports(self, xml: str) -> list[str]:
        node = self.processor.parse_xml(xml_text=xml)
        return [executable.transform_to_string(xdm_node=node)
                for executable in self.executables]


_saxon: _Saxon | None = None


def _flag(value: str | None) -> Flag:
    return "warning" if value == "warning" else "information" if value == "information" \
        else "fatal"


def run_gate(xml: str) -> tuple[GateFinding, ...]:
    """The official rules' failed assertions for one invoice (empty: it passes them)."""
    global _saxon  # noqa: PLW0603 - the compiled stylesheets live once per process
    from saxonche import PySaxonApiError

    with _LOCK:
        if _saxon is None:
            _saxon = _Saxon()
        try:
            reports = _saxon.reports(xml)
        except PySaxonApiError as exc:
            message = " ".join(str(exc).split())[:300] or type(exc).__name__
            return (GateFinding(rule=UNEVALUABLE, flag="fatal", location="",
                                text=f"the rules could not evaluate the document: {message}"),)
    findings: list[GateFinding] = []
    for report in reports:
        if "failed-assert" not in report:  # the usual case: nothing to read back
            continue
        root = etree.fromstring(report.encode("utf-8"),
                                etree.XMLParser(resolve_entities=False, no_network=True))
        for failed in root.iter(f"{_SVRL}failed-assert"):
            text = " ".join("".join(str(t) for t in failed.itertext()).split())
            findings.append(GateFinding(rule=failed.get("id") or "unnamed",
                                        flag=_flag(failed.get("flag")), text=text,
                                        location=failed.get("location") or ""))
    return tuple(findings)


def _violation(finding: GateFinding) -> RuleViolation:
    level_ja = {"fatal": "エラー", "warning": "警告", "information": "情報"}[finding.flag]
    message_ja = (f"JP PINT {jp_pint_version()} の公式ルールで文書を評価できません"
                  f"（金額・日付などの書式が不正です）：{finding.text}"
                  if finding.rule == UNEVALUABLE else
                  f"JP PINT {jp_pint_version()} の公式ルール {finding.rule}（{level_ja}）に"
                  f"適合しません：{finding.text}")
    return RuleViolation(
        rule_id="INV-4", reference=finding.rule, flag=finding.flag, message_ja=message_ja,
        message_en=(f"The invoice breaks the official JP PINT {jp_pint_version()} rule "
                    f"{finding.rule} ({finding.flag}): {finding.text}"),
        next_step_ja=("請求書作成ソフトでルールの指摘箇所を直し、JP PINTとして出力し直して"
                      "再送してください。" if finding.flag == "fatal"
                      else "支払には影響しませんが、次回の請求書から直してください。"),
        next_step_en=("Correct what the rule points at in your invoicing software, export the "
                      "invoice again as JP PINT and resend it." if finding.flag == "fatal"
                      else "This does not stop the payment; correct it in future invoices."),
        field=finding.location[:300] or None)


def gate_violations(findings: tuple[GateFinding, ...]) -> tuple[tuple[RuleViolation, ...],
                                                                tuple[RuleViolation, ...]]:
    """``(fatal, warnings)`` as INV-4 violations; information-only findings are dropped."""
    fatal = tuple(_violation(f) for f in findings if f.flag == "fatal")
    warnings = tuple(_violation(f) for f in findings if f.flag == "warning")
    return fatal, warnings
