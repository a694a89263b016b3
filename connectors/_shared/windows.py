"""Maintenance windows and service hours of outside systems (WIN-1, WIN-2, WIN-3).

A peer inside a window is not failing: work that needs it is held and released
afterwards, never failed or lost (WIN-3). A connector asks its
:class:`MaintenanceCalendar` before calling out; when the peer is closed,
:meth:`MaintenanceCalendar.check` raises
:class:`~connectors._shared.errors.PeerInMaintenance` with the time it opens
again, and the hub holds the message until then.

All wall times are Asia/Tokyo (JST, no daylight saving). Windows can be written
as short strings, so that settings can carry them in environment variables:

- ``monthly 3 wed 18:30-23:00``  third Wednesday of every month (``last`` = last one)
- ``weekly sun 00:00-06:00``     every Sunday; an end before the start runs past midnight
- ``fixed 2026-12-01T20:00 2026-12-02T06:00``  one announced window (JST unless an offset is given)
- ``hours mon-fri 08:30-20:00``  open only then, closed on national holidays and
  12/29–1/5 (the e-bid service hours of WIN-1)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol

import holidays

from connectors._shared.errors import PeerInMaintenance
from schemas.envelope import JST

__all__ = [
    "FixedWindow",
    "MaintenanceCalendar",
    "MonthlyWindow",
    "ServiceHours",
    "WeeklyWindow",
    "Window",
    "parse_window",
]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_HOPS = 400


class Window(Protocol):
    """One rule that closes a peer for some stretches of time."""

    @property
    def label(self) -> str:
        """How people name the window (shown in holds and health)."""

    def closed_until(self, at: datetime) -> datetime | None:
        """If ``at`` falls in a closed stretch, when that stretch ends; else None."""


def _jst(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("maintenance windows need timezone-aware times")
    return at.astimezone(JST)


def _span(day: date, start: time, end: time) -> tuple[datetime, datetime]:
    begin = datetime.combine(day, start, JST)
    finish = datetime.combine(day, end, JST)
    if finish <= begin:
        finish += timedelta(days=1)
    return begin, finish


def _occurrence_end(at: datetime, start: time, end: time,
                    on_day: Callable[[date], bool]) -> datetime | None:
    local = _jst(at)
    # A window that runs past midnight may have started the day before.
    for day in (local.date() - timedelta(days=1), local.date()):
        if on_day(day):
            begin, finish = _span(day, start, end)
            if begin <= local < finish:
                return finish
    return None


@dataclass(frozen=True)
class WeeklyWindow:
    """Every week on ``weekday`` (0 = Monday) from ``start`` to ``end`` JST."""

    weekday: int
    start: time
    end: time
    label: str = "weekly"

    def closed_until(self, at: datetime) -> datetime | None:
        return _occurrence_end(at, self.start, self.end, lambda d: d.weekday() == self.weekday)


@dataclass(frozen=True)
class MonthlyWindow:
    """The ``nth`` ``weekday`` of every month (nth 1–5, or -1 for the last), as in
    WIN-2's "monthly Wednesday 18:30–23:00"."""

    weekday: int
    nth: int
    start: time
    end: time
    label: str = "monthly"

    def _matches(self, day: date) -> bool:
        if day.weekday() != self.weekday:
            return False
        if self.nth == -1:
            return (day + timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 + 1 == self.nth

    def closed_until(self, at: datetime) -> datetime | None:
        return _occurrence_end(at, self.start, self.end, self._matches)


@dataclass(frozen=True)
class FixedWindow:
    """One announced window, e.g. a system upgrade."""

    begin: datetime
    end: datetime
    label: str = "announced"

    def __post_init__(self) -> None:
        if self.begin.tzinfo is None or self.end.tzinfo is None or self.end <= self.begin:
            raise ValueError("a fixed window needs aware begin < end")

    def closed_until(self, at: datetime) -> datetime | None:
        return self.end.astimezone(JST) if self.begin <= at < self.end else None


@lru_cache(maxsize=16)
def _jp_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def _is_service_day(day: date, weekdays: frozenset[int]) -> bool:
    year_end = (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 5)
    return day.weekday() in weekdays and not year_end and day not in _jp_holidays(day.year)


@dataclass(frozen=True)
class ServiceHours:
    """Open only on ``weekdays`` from ``open_at`` to ``close_at`` JST, never on national
    holidays nor 12/29–1/5 (WIN-1). Closed everywhere else."""

    weekdays: frozenset[int]
    open_at: time
    close_at: time
    label: str = "service hours"

    def _open_span(self, day: date) -> tuple[datetime, datetime] | None:
        if not _is_service_day(day, self.weekdays):
            return None
        return _span(day, self.open_at, self.close_at)

    def closed_until(self, at: datetime) -> datetime | None:
        local = _jst(at)
        day = local.date()
        for candidate in (day - timedelta(days=1), day):
            span = self._open_span(candidate)
            if span and span[0] <= local < span[1]:
                return None
        for offset in range(_MAX_HOPS):
            span = self._open_span(day + timedelta(days=offset))
            if span and span[0] > local:
                return span[0]
        raise ValueError(f"{self.label}: no service day within {_MAX_HOPS} days")


class MaintenanceCalendar:
    """All the windows of one peer. Overlapping or back-to-back windows chain."""

    def __init__(self, windows: Iterable[Window] = ()) -> None:
        self.windows: tuple[Window, ...] = tuple(windows)

    def closed_until(self, now: datetime) -> tuple[datetime, str] | None:
        """When the peer opens again and which window holds it, or None if open now."""
        at, labels = _jst(now), list[str]()
        for _ in range(_MAX_HOPS):
            ends = [(w.closed_until(at), w.label) for w in self.windows]
            closing = [(end, label) for end, label in ends if end is not None]
            if not closing:
                return (at, " + ".join(labels)) if labels else None
            end, label = max(closing)
            labels.append(label)
            at = end
        raise ValueError("maintenance windows never open")

    def is_open(self, now: datetime) -> bool:
        return self.closed_until(now) is None

    def next_open(self, now: datetime) -> datetime:
        """``now`` if open, else the first moment the peer is open again (JST)."""
        closed = self.closed_until(now)
        return closed[0] if closed else _jst(now)

    def check(self, connector: str, now: datetime) -> None:
        """Raise :class:`PeerInMaintenance` when the peer is inside a window."""
        closed = self.closed_until(now)
        if closed is not None:
            raise PeerInMaintenance(connector, closed[0], closed[1])


_TIME_RANGE = r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})"


def _times(match: re.Match[str], first: int) -> tuple[time, time]:
    h1, m1, h2, m2 = (int(match.group(first + i)) for i in range(4))
    return time(h1 % 24, m1), time(h2 % 24, m2)


def _day(name: str) -> int:
    return _DAYS.index(name.lower()[:3])


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=JST)


def parse_window(spec: str) -> Window:
    """Read one window from its short form (see the module docstring)."""
    text = " ".join(spec.split()).lower()
    day = "(mon|tue|wed|thu|fri|sat|sun)"
    if m := re.fullmatch(rf"monthly (\d|last) {day} {_TIME_RANGE}", text):
        nth = -1 if m.group(1) == "last" else int(m.group(1))
        if not (nth == -1 or 1 <= nth <= 5):
            raise ValueError(f"window {spec!r}: nth must be 1-5 or 'last'")
        return MonthlyWindow(_day(m.group(2)), nth, *_times(m, 3), label=spec.strip())
    if m := re.fullmatch(rf"weekly {day} {_TIME_RANGE}", text):
        return WeeklyWindow(_day(m.group(1)), *_times(m, 2), label=spec.strip())
    if m := re.fullmatch(r"fixed (\S+) (\S+)", spec.strip(), flags=re.IGNORECASE):
        return FixedWindow(_aware(m.group(1)), _aware(m.group(2)), label=spec.strip())
    if m := re.fullmatch(rf"hours {day}-{day} {_TIME_RANGE}", text):
        first, last = _day(m.group(1)), _day(m.group(2))
        days = frozenset(d % 7 for d in range(first, last + 1 if last >= first else last + 8))
        return ServiceHours(days, *_times(m, 3), label=spec.strip())
    raise ValueError(
        f"window {spec!r} not understood; write e.g. 'monthly 3 wed 18:30-23:00', "
        "'weekly sun 00:00-06:00', 'fixed 2026-12-01T20:00 2026-12-02T06:00' "
        "or 'hours mon-fri 08:30-20:00'"
    )
