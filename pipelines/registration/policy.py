"""Per-entity registration policy, read from TOML (default: ``default_policy.toml``).

One entry per procuring entity and system: the ID scheme (REG-3), whether the legal
representative may hold the card (REG-5, RNW-4), the re-issued-card policy (REG-11),
the service window (WIN-1: weekdays 08:30–20:00, not on national holidays from the
``holidays`` library nor 12/29–1/5), the announced maintenance windows (WIN-2: date,
start, end, and what they stop), the low-validity warning threshold (REG-6), and
the network of entities that share user IDs and propagate to each other (REG-9).
"""

from __future__ import annotations

import enum
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import holidays

from schemas.envelope import JST
from schemas.registration import SystemKind

__all__ = [
    "DEFAULT_POLICY",
    "EntityPolicy",
    "IdScheme",
    "MaintenanceWindow",
    "PolicyBook",
    "PolicyError",
    "ReissuedCardPolicy",
    "WindowStop",
    "default_policy_book",
    "is_service_time",
    "load_policy_book",
    "parse_announced",
]

DEFAULT_POLICY = "default_policy.toml"


class PolicyError(ValueError):
    """The policy file is wrong; the message names the entry and the key."""


class IdScheme(enum.StrEnum):
    """How an entity's system identifies a contractor (REG-3)."""

    USER_ID = "user-id"
    """ユーザID: 10 half-width digits (Saitama)."""
    VENDOR_NUMBER = "vendor-number"
    """業者番号: 9 half-width alphanumerics (Yamaguchi)."""

    @property
    def pattern(self) -> re.Pattern[str]:
        return _SCHEME_PATTERNS[self]

    @property
    def label_ja(self) -> str:
        if self is IdScheme.USER_ID:
            return "ユーザID（半角数字10桁）"
        return "業者番号（半角英数字9文字）"


_SCHEME_PATTERNS = {
    IdScheme.USER_ID: re.compile(r"[0-9]{10}"),
    IdScheme.VENDOR_NUMBER: re.compile(r"[0-9A-Za-z]{9}"),
}


_ENTITY_CODE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
"""schemas.envelope.EntityCode's pattern."""


class ReissuedCardPolicy(enum.StrEnum):
    """What a new card of a company already registered should go through (REG-11)."""

    REGISTRATION = "registration"
    """e-bid: when unsure, register (the old card stays usable while valid, REG-2)."""
    RENEWAL = "renewal"
    """e-contract: renew; a registration would issue a second 受注者番号, so it is held."""


class WindowStop(enum.StrEnum):
    """What an announced maintenance window stops (WIN-2)."""

    REGISTRATION = "registration"
    """利用者登録・変更・ICカード更新 (and the propagations that apply them there)."""
    SIGNING = "signing"
    """電子署名付与 (e.g. the timestamp service's maintenance, seeds 000/001)."""
    ALL = "all"
    """Every service of the system, login included."""


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One announced maintenance window of an entity's system (WIN-2), JST."""

    start: datetime
    end: datetime
    stops: WindowStop

    def covers(self, at: datetime, what: WindowStop) -> bool:
        """Whether ``at`` is inside the window and the window stops ``what``."""
        return (self.stops is WindowStop.ALL or self.stops is what) and (
            self.start <= at < self.end)


# As the seeds announce them: 「2024年 10月23日(水) 18:30 ~ 2024年 10月23日(水) 23:00」.
# Read after NFKC: full-width digits, brackets and ～ are half-width by then.
_ANNOUNCED_AT = r"(\d{4})年\s*(\d{1,2})月\s*(\d{1,2})日\s*(?:\([^)]*\))?\s*(\d{1,2}):(\d{2})"
_ANNOUNCED = re.compile(rf"^\s*{_ANNOUNCED_AT}\s*[~〜-]\s*{_ANNOUNCED_AT}\s*$")


def parse_announced(text: str, stops: WindowStop) -> MaintenanceWindow:
    """A window from one line as the e-contract portal announces it (seeds 000, 001).

    ``"2024年 11月17日(日) 23:00 ~ 2024年 11月18日(月) 6:00"``: from 23:00 JST on the
    17th to 06:00 on the 18th. Full-width digits are read as half-width.
    """
    m = _ANNOUNCED.match(unicodedata.normalize("NFKC", text))
    if m is None:
        raise PolicyError(f"announced window {text!r}: expected e.g. "
                          "'2024年 10月23日(水) 18:30 ~ 2024年 10月23日(水) 23:00'")
    y1, mo1, d1, h1, mi1, y2, mo2, d2, h2, mi2 = (int(g) for g in m.groups())
    try:
        start = datetime(y1, mo1, d1, h1, mi1, tzinfo=JST)
        end = datetime(y2, mo2, d2, h2, mi2, tzinfo=JST)
    except ValueError as exc:
        raise PolicyError(f"announced window {text!r}: {exc}") from None
    if end <= start:
        raise PolicyError(f"announced window {text!r}: it must end after it starts")
    return MaintenanceWindow(start, end, stops)


@dataclass(frozen=True, slots=True)
class EntityPolicy:
    """The policy of one procuring entity for one system."""

    code: str
    system: SystemKind
    name: str
    network: str
    id_scheme: IdScheme
    legal_representative_may_hold_card: bool
    reissued_card: ReissuedCardPolicy
    renewal_allows_holder_change: bool
    service_hours: tuple[time, time] | None
    weekdays_only: bool
    closed_on_holidays: bool
    year_end_closure: bool
    low_validity_days: int
    auth_max_age_minutes: int
    batch_time: time
    lookup_needs_password: bool = True
    """REG-3: Saitama asks for the password; Yamaguchi looks up by 業者番号 + 商号 only."""
    maintenance: tuple[MaintenanceWindow, ...] = ()
    """WIN-2: the announced maintenance windows of the entity's system."""
    # Derived once from the fields above: the rules need them for every command.
    auth_max_age: timedelta = field(init=False, repr=False, compare=False)
    """PIN-2: auth_max_age_minutes as a timedelta."""
    low_validity: timedelta = field(init=False, repr=False, compare=False)
    """REG-6: low_validity_days as a timedelta."""
    _days: dict[date, tuple[bool, datetime]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Events built from policy values are not validated again (schemas.registration
        # .trusted), so the values are held to the events' own constraints here, once.
        if not _ENTITY_CODE.fullmatch(self.code):
            raise ValueError(f"code {self.code!r}: expected lowercase a-z, 0-9 and '-', "
                             "2-63 characters")
        if not 1 <= len(self.network) <= 64:
            raise ValueError(f"network {self.network!r}: expected 1-64 characters")
        object.__setattr__(self, "auth_max_age", timedelta(minutes=self.auth_max_age_minutes))
        object.__setattr__(self, "low_validity", timedelta(days=self.low_validity_days))
        object.__setattr__(self, "_days", {})

    def _day(self, day: date) -> tuple[bool, datetime]:
        """Per JST day: closed all day (WIN-1)?, and the nightly batch after it."""
        known = self._days.get(day)
        if known is None:
            if len(self._days) >= 4096:
                self._days.clear()
            known = self._days[day] = (
                (self.weekdays_only and day.weekday() >= 5)
                or (self.year_end_closure and _year_end(day))
                or (self.closed_on_holidays and day in _jp_holidays(day.year)),
                datetime.combine(day + timedelta(days=1), self.batch_time, tzinfo=JST))
        return known

    def maintenance_at(self, at: datetime, what: WindowStop) -> MaintenanceWindow | None:
        """The announced window (WIN-2) that stops ``what`` at ``at``, if any."""
        return next((w for w in self.maintenance if w.covers(at, what)), None)

    def next_batch(self, now: datetime) -> datetime:
        """When the nightly batch after ``now`` runs: the next day at ``batch_time`` JST."""
        return self._day(now.astimezone(JST).date())[1]


@dataclass(frozen=True)
class PolicyBook:
    """All entity policies, by (entity code, system) and by network."""

    entries: Mapping[tuple[str, SystemKind], EntityPolicy]
    _networks: dict[str, str] = field(init=False, repr=False, compare=False)
    _members: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _by_member: dict[tuple[str, str], EntityPolicy] = field(init=False, repr=False,
                                                           compare=False)

    def __post_init__(self) -> None:
        # Indexed once: the rules ask these for every command.
        networks = {p.code: p.network for p in self.entries.values()}
        members = {n: tuple(sorted(c for c, m in networks.items() if m == n))
                   for n in set(networks.values())}
        object.__setattr__(self, "_networks", networks)
        object.__setattr__(self, "_members", members)
        object.__setattr__(self, "_by_member", {
            (p.code, p.network): p for p in sorted(self.entries.values(),
                                                   key=lambda p: p.system.value, reverse=True)})

    def get(self, code: str, system: SystemKind) -> EntityPolicy | None:
        return self.entries.get((code, system))

    def member(self, code: str, network: str) -> EntityPolicy | None:
        """The policy of entity ``code`` in ``network`` (a propagation's target)."""
        return self._by_member.get((code, network))

    def network_of(self, code: str) -> str | None:
        return self._networks.get(code)

    def entities_in(self, network: str) -> tuple[str, ...]:
        return self._members.get(network, ())


_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _time(value: Any, where: str) -> time:
    if not isinstance(value, str) or not (m := _TIME.match(value)):
        raise PolicyError(f"{where}: expected HH:MM, got {value!r}")
    return time(int(m.group(1)), int(m.group(2)))


def _hours(value: Any, where: str) -> tuple[time, time] | None:
    if value in ("", None):
        return None
    if not isinstance(value, str) or value.count("-") != 1:
        raise PolicyError(f"{where}: expected 'HH:MM-HH:MM' or '', got {value!r}")
    start, end = (_time(v, where) for v in value.split("-"))
    if end <= start:
        raise PolicyError(f"{where}: the window must end after it starts")
    return start, end


def _window(raw: Any, where: str) -> MaintenanceWindow:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a table")
    try:
        stops = WindowStop(raw.get("stops", "all"))
    except ValueError:
        raise PolicyError(f"{where}: stops must be one of "
                          f"{', '.join(s.value for s in WindowStop)}") from None
    if "announced" in raw:
        if not isinstance(raw["announced"], str):
            raise PolicyError(f"{where}: announced must be a string")
        return parse_announced(raw["announced"], stops)
    day = raw.get("date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise PolicyError(f"{where}: date must be YYYY-MM-DD, got {day!r}") from None
    if not isinstance(day, date) or isinstance(day, datetime):
        raise PolicyError(f"{where}: needs 'announced', or 'date' with 'start' and 'end'")
    start = datetime.combine(day, _time(raw.get("start"), f"{where} start"), JST)
    end = datetime.combine(day, _time(raw.get("end"), f"{where} end"), JST)
    if end <= start:  # an end before the start runs past midnight
        end += timedelta(days=1)
    return MaintenanceWindow(start, end, stops)


def _windows(raw: Any, where: str) -> tuple[MaintenanceWindow, ...]:
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: expected a list of windows")
    return tuple(sorted((_window(w, f"{where} #{i + 1}") for i, w in enumerate(raw)),
                        key=lambda w: w.start))


def _entry(raw: Mapping[str, Any], index: int) -> EntityPolicy:
    where = f"[[entity]] #{index + 1} ({raw.get('code', '?')})"

    def get(key: str, kind: type) -> Any:
        if key not in raw:
            raise PolicyError(f"{where}: missing key {key!r}")
        value = raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise PolicyError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
        return value

    try:
        return EntityPolicy(
            code=get("code", str),
            system=SystemKind(get("system", str)),
            name=get("name", str),
            network=get("network", str),
            id_scheme=IdScheme(get("id_scheme", str)),
            legal_representative_may_hold_card=get("legal_representative_may_hold_card", bool),
            reissued_card=ReissuedCardPolicy(get("reissued_card", str)),
            renewal_allows_holder_change=get("renewal_allows_holder_change", bool),
            service_hours=_hours(raw.get("service_hours", ""), f"{where} service_hours"),
            weekdays_only=get("weekdays_only", bool),
            closed_on_holidays=get("closed_on_holidays", bool),
            year_end_closure=get("year_end_closure", bool),
            low_validity_days=get("low_validity_days", int),
            auth_max_age_minutes=get("auth_max_age_minutes", int),
            batch_time=_time(raw.get("batch_time", "02:00"), f"{where} batch_time"),
            lookup_needs_password=(get("lookup_needs_password", bool)
                                   if "lookup_needs_password" in raw else True),
            maintenance=_windows(raw.get("maintenance", []), f"{where} maintenance"),
        )
    except ValueError as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"{where}: {exc}") from None


def policy_book_from(data: Mapping[str, Any]) -> PolicyBook:
    """A policy book from parsed TOML (or the same shape in JSON)."""
    raw_entries = data.get("entity")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise PolicyError("the policy needs at least one [[entity]] entry")
    entries: dict[tuple[str, SystemKind], EntityPolicy] = {}
    for i, raw in enumerate(raw_entries):
        policy = _entry(raw, i)
        key = (policy.code, policy.system)
        if key in entries:
            raise PolicyError(f"entity {policy.code!r} has two entries for {policy.system}")
        entries[key] = policy
    return PolicyBook(entries)


def load_policy_book(path: str | Path) -> PolicyBook:
    """Read a policy TOML file (see ``default_policy.toml`` for every key)."""
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return policy_book_from(data)


@lru_cache(maxsize=1)
def default_policy_book() -> PolicyBook:
    text = resources.files(__package__).joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    return policy_book_from(tomllib.loads(text))


@lru_cache(maxsize=16)
def _jp_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def _year_end(day: date) -> bool:
    return (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 5)


def is_service_time(policy: EntityPolicy, at: datetime) -> bool:
    """Whether the entity's system is open at ``at`` (WIN-1)."""
    local = at.astimezone(JST)
    if policy._day(local.date())[0]:
        return False
    if policy.service_hours is None:
        return True
    start, end = policy.service_hours
    # datetime.time() is naive already, as the window's bounds are.
    return start <= local.time() < end

