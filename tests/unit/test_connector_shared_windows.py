"""Maintenance windows and service hours (WIN-1, WIN-2, WIN-3)."""

from datetime import UTC, datetime, time, timedelta

import pytest

from connectors._shared import MaintenanceCalendar, PeerInMaintenance, parse_window
from connectors._shared.windows import FixedWindow, MonthlyWindow, ServiceHours, WeeklyWindow
from schemas.envelope import JST


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)  # type: ignore[misc]


def test_monthly_third_wednesday_win2() -> None:
    cal = MaintenanceCalendar([parse_window("monthly 3 wed 18:30-23:00")])
    # November 2026: Wednesdays 4, 11, 18, 25 -> the third is the 18th.
    assert cal.is_open(jst(2026, 11, 18, 18, 29))
    assert not cal.is_open(jst(2026, 11, 18, 18, 30))
    assert cal.next_open(jst(2026, 11, 18, 20, 0)) == jst(2026, 11, 18, 23, 0)
    assert cal.is_open(jst(2026, 11, 18, 23, 0))
    assert cal.is_open(jst(2026, 11, 11, 19, 0))  # second Wednesday: open


def test_monthly_last_weekday() -> None:
    window = MonthlyWindow(2, -1, time(18, 30), time(23, 0))
    assert window.closed_until(jst(2026, 11, 25, 19, 0)) == jst(2026, 11, 25, 23, 0)
    assert window.closed_until(jst(2026, 11, 18, 19, 0)) is None


def test_window_in_utc_input_is_read_in_jst() -> None:
    cal = MaintenanceCalendar([parse_window("monthly 3 wed 18:30-23:00")])
    # 10:00 UTC is 19:00 JST.
    assert not cal.is_open(datetime(2026, 11, 18, 10, 0, tzinfo=UTC))


def test_weekly_window_past_midnight() -> None:
    window = WeeklyWindow(6, time(22, 0), time(4, 0))  # Sunday 22:00 -> Monday 04:00
    assert window.closed_until(jst(2026, 11, 23, 3, 0)) == jst(2026, 11, 23, 4, 0)  # Monday
    assert window.closed_until(jst(2026, 11, 22, 23, 0)) == jst(2026, 11, 23, 4, 0)
    assert window.closed_until(jst(2026, 11, 23, 4, 0)) is None


def test_chained_windows_open_after_the_last() -> None:
    cal = MaintenanceCalendar([
        FixedWindow(jst(2026, 12, 1, 20, 0), jst(2026, 12, 1, 22, 0), label="upgrade"),
        FixedWindow(jst(2026, 12, 1, 21, 30), jst(2026, 12, 2, 1, 0), label="backup"),
    ])
    closed = cal.closed_until(jst(2026, 12, 1, 20, 30))
    assert closed == (jst(2026, 12, 2, 1, 0), "upgrade + backup")


def test_check_raises_hold_with_retry_at() -> None:
    cal = MaintenanceCalendar([parse_window("fixed 2026-12-01T20:00 2026-12-02T06:00")])
    with pytest.raises(PeerInMaintenance) as info:
        cal.check("erp", jst(2026, 12, 1, 21, 0))
    assert info.value.retry_at == jst(2026, 12, 2, 6, 0)
    assert info.value.retry_at.tzinfo is UTC
    assert info.value.retryable
    cal.check("erp", jst(2026, 12, 2, 6, 0))


def test_service_hours_win1_weekdays_holidays_year_end() -> None:
    hours = parse_window("hours mon-fri 08:30-20:00")
    assert isinstance(hours, ServiceHours)
    cal = MaintenanceCalendar([hours])
    assert cal.is_open(jst(2026, 11, 24, 8, 30))  # Tuesday
    assert not cal.is_open(jst(2026, 11, 24, 20, 0))
    # Monday 23 Nov 2026 is 勤労感謝の日: closed until Tuesday 08:30.
    assert cal.next_open(jst(2026, 11, 23, 10, 0)) == jst(2026, 11, 24, 8, 30)
    # 12/29-1/5 closed; 2027-01-06 is a Wednesday.
    assert cal.next_open(jst(2026, 12, 28, 20, 30)) == jst(2027, 1, 6, 8, 30)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        MaintenanceCalendar([parse_window("weekly sun 00:00-06:00")]).is_open(
            datetime(2026, 11, 22, 1, 0))


@pytest.mark.parametrize("spec", ["monthly 6 wed 18:30-23:00", "sometimes", "weekly xyz 1:00-2:00",
                                  "fixed 2026-12-02T06:00 2026-12-01T20:00"])
def test_bad_window_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(spec)


def test_fixed_window_without_offset_is_jst() -> None:
    window = parse_window("fixed 2026-12-01T20:00 2026-12-01T21:00")
    assert window.closed_until(jst(2026, 12, 1, 20, 0) + timedelta(minutes=1)) == jst(
        2026, 12, 1, 21, 0)
