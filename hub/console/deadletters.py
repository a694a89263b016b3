"""デッドレター in the console: browse and filter, show one, replay one after a
confirmation step (管理者 only, docs/console.md).

The letters are read from the dead-letter topics and replayed with :mod:`hub.dlq`, as
``hub dlq list|show|replay`` does; a replay writes the same audit row as the command line
(``dlq.replay``, role ``admin``, the message's entity), naming the person instead of the
OS account. An administrator of some entities sees and replays only their entities'
letters; one of every entity (``*``) also those that name none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import orjson

from hub.dlq import DeadLetter

__all__ = ["LetterFilter", "letter_entity", "matching"]


def letter_entity(letter: DeadLetter) -> str:
    """The procuring entity the dead message names ('' when none can be read)."""
    try:
        found = orjson.loads(letter.value or b"{}")
    except orjson.JSONDecodeError:
        return ""
    return str(found.get("procuring_entity") or "") if isinstance(found, dict) else ""


@dataclass(frozen=True)
class LetterFilter:
    """The list's filters; empty ones match everything."""

    topic: str = ""
    reason: str = ""
    rule: str = ""
    entity: str = ""
    since: date | None = None

    def admits(self, letter: DeadLetter) -> bool:
        if self.topic and self.topic not in (letter.original_topic, letter.dlq_topic):
            return False
        if self.reason and self.reason != letter.context("reason"):
            return False
        if self.rule and self.rule not in letter.context("rule-ids").split(","):
            return False
        if self.entity and self.entity != letter_entity(letter):
            return False
        if self.since is not None:
            try:
                at = datetime.fromisoformat(letter.context("at"))
            except ValueError:
                return False
            if at.date() < self.since:
                return False
        return True


def matching(letters: Iterable[DeadLetter], scope: frozenset[str] | None,
             wanted: LetterFilter) -> list[DeadLetter]:
    """The letters of the caller's ``scope`` (``None``: every entity) that ``wanted``
    admits, newest first."""
    return sorted((d for d in letters
                   if (scope is None or letter_entity(d) in scope) and wanted.admits(d)),
                  key=lambda d: d.context("at"), reverse=True)


def choices(letters: Sequence[DeadLetter]) -> dict[str, list[str]]:
    """The values the filters can take among ``letters`` (for the select boxes)."""
    return {
        "topic": sorted({d.original_topic for d in letters}),
        "reason": sorted({d.context("reason") for d in letters} - {""}),
        "rule": sorted({r for d in letters for r in d.context("rule-ids").split(",") if r}),
        "entity": sorted({letter_entity(d) for d in letters} - {""}),
    }
