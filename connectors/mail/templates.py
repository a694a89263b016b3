"""The text of every notice (NTF rules), one template file per MailKind.

Templates live in ``connectors/mail/notices/<kind>.txt``: a ``Subject:`` line,
a blank line, then the body, with ``${name}`` placeholders filled from
``MailRequested.values``. The 利用者登録のお知らせ text follows the Saitama joint
e-bid system's mail (seed 004, REG-10). Every mail gets the NTF-2 footer from
here (``render`` returns it apart, for the mapping to put last), so no template
can forget that the mail is machine-sent and not to be replied to.
GENERIC mails take their subject from ``values["subject"]`` and their lines from
``values["body_1"]``, ``values["body_2"]``, ...

Values are refused when they carry line breaks or other control characters
(header injection through names or subjects is impossible, and bodies keep the
layout people rely on), or when a placeholder has no value.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from schemas.mail import MailKind

__all__ = [
    "NTF2_NOTICE",
    "RULE_OF_KIND",
    "MailTemplate",
    "MailValueError",
    "render",
    "required_values",
]

NTF2_NOTICE = "※このメールはシステムが自動送信しています。\nこのアドレスには返信しないでください。"
"""NTF-2: machine-sent, not to be replied to (wording of seed 004)."""

RULE_OF_KIND: dict[MailKind, str] = {
    MailKind.REGISTRATION: "REG-10",
    MailKind.CHANGE: "CHG-4",
    MailKind.RENEWAL: "RNW-9",
    MailKind.PROPAGATION_REFUSED: "REG-9",
    MailKind.NOMINATION: "NTF-1",
    MailKind.AWARD: "NTF-1",
    MailKind.CONTRACT_REVIEW: "CON-3",
    MailKind.CONTRACT_CONCLUDED: "CON-4",
    MailKind.SURETY_RESULT: "SUR-6",
    MailKind.GENERIC: "NTF-2",
}
"""The rule each notice serves; a refusal of the request cites it."""

_GENERIC_LINE = re.compile(r"^body_(\d{1,3})$")
_MAX_VALUE = 2000


class MailValueError(ValueError):
    """A request whose values cannot make a safe, complete mail."""

    def __init__(self, kind: MailKind, key: str, problem_en: str, problem_ja: str) -> None:
        super().__init__(f"{RULE_OF_KIND[kind]} {kind.value}: value {key!r}: {problem_en}")
        self.kind, self.key = kind, key
        self.problem_en, self.problem_ja = problem_en, problem_ja


@dataclass(frozen=True)
class MailTemplate:
    subject: Template
    body: Template


@cache
def _template(kind: MailKind) -> MailTemplate:
    text = resources.files("connectors.mail").joinpath(f"notices/{kind.value}.txt").read_text(
        encoding="utf-8")
    head, _, body = text.partition("\n\n")
    if not head.startswith("Subject: "):
        raise ValueError(f"notice template {kind.value}.txt must start with 'Subject: '")
    return MailTemplate(Template(head.removeprefix("Subject: ").strip()), Template(body.strip()))


def required_values(kind: MailKind) -> frozenset[str]:
    """The ``values`` keys a request of this kind must carry (system_name is optional)."""
    if kind is MailKind.GENERIC:
        return frozenset({"subject", "body_1"})
    template = _template(kind)
    named = template.subject.get_identifiers() + template.body.get_identifiers()
    return frozenset(named) - {"system_name"}


def _check_value(kind: MailKind, key: str, value: str) -> None:
    if len(value) > _MAX_VALUE:
        raise MailValueError(kind, key, f"longer than {_MAX_VALUE} characters",
                             f"{_MAX_VALUE}文字を超えています")
    for char in value:
        # Cc covers CR, LF, NUL, ESC...; Zl/Zp are U+2028/U+2029 line and paragraph breaks.
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t":
            raise MailValueError(kind, key, "contains a line break or control character",
                                 "改行または制御文字が含まれています")


def render(kind: MailKind, values: dict[str, str], system_name: str) -> tuple[str, str, str]:
    """``(subject, body, footer)`` of one notice; the footer is NTF-2's. Raises MailValueError."""
    for key, value in values.items():
        _check_value(kind, key, value)
    missing = sorted(required_values(kind) - values.keys())
    if missing:
        raise MailValueError(kind, ", ".join(missing), "missing", "値がありません")
    system = values.get("system_name") or system_name
    if kind is MailKind.GENERIC:
        numbered = sorted((int(m.group(1)), v) for k, v in values.items()
                          if (m := _GENERIC_LINE.match(k)))
        subject, body = values["subject"], "\n".join(v for _, v in numbered)
    else:
        template = _template(kind)
        filled = {**values, "system_name": system}
        subject = template.subject.substitute(filled)
        body = template.body.substitute(filled)
    if not subject.strip():
        raise MailValueError(kind, "subject", "empty subject", "件名が空です")
    return subject, body, f"{NTF2_NOTICE}\n\n***** {system} *****\n"
