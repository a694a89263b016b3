"""Retry policy, circuit breaker and the call guard every connector uses."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic_settings import SettingsConfigDict

from connectors._shared import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    ConnectorSettings,
    Guard,
    HealthState,
    MaintenanceCalendar,
    PeerInMaintenance,
    PermanentPeerError,
    RetryPolicy,
    TransientPeerError,
    parse_window,
)
from schemas.rejection import RuleViolation

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # Tuesday 12:00 JST


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def make_guard(attempts: int = 3, threshold: int = 5, windows: tuple[str, ...] = (),
               clock: FakeClock | None = None) -> tuple[Guard, Recorder]:
    sleeper = Recorder()
    guard = Guard(
        "peer",
        policy=RetryPolicy(attempts, base_delay=0.1, max_delay=1.0, rng=random.Random(7)),
        breaker=CircuitBreaker(threshold, reset_timeout=10.0, clock=clock or FakeClock()),
        calendar=MaintenanceCalendar(parse_window(w) for w in windows),
        timeout_s=1.0, now=lambda: NOW, sleep=sleeper,
    )
    return guard, sleeper


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(6, base_delay=0.1, max_delay=1.0, rng=random.Random(1))
    assert [policy.ceiling(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    delays = [policy.delay(3) for _ in range(200)]
    assert all(0.0 <= d <= 0.4 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jitter, not a constant


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, reset_timeout=10.0, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.t = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.t = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


async def test_transient_failures_are_retried_then_classified() -> None:
    guard, sleeper = make_guard(attempts=3)
    calls = 0

    async def down() -> str:
        nonlocal calls
        calls += 1
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(TransientPeerError) as info:
        await guard.call(down, what="register")
    assert calls == 3
    assert info.value.attempts == 3
    assert len(info.value.history) == 3
    assert "Connection refused" in info.value.history[0]
    assert len(sleeper.sleeps) == 2
    assert guard.stats.retries == 2


async def test_success_after_a_retry() -> None:
    guard, _ = make_guard(attempts=3)
    outcomes = [TimeoutError(), "ok"]

    async def flaky() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert await guard.call(flaky, what="send") == "ok"
    assert guard.stats.attempts == 2
    assert guard.breaker.state is BreakerState.CLOSED


async def test_permanent_refusal_is_not_retried_and_keeps_rules() -> None:
    guard, sleeper = make_guard()
    violation = RuleViolation(rule_id="INV-3", message_ja="請求が不正です",
                              message_en="bad invoice")

    async def refuse() -> str:
        raise PermanentPeerError("peer", "refused", (violation,))

    with pytest.raises(PermanentPeerError) as info:
        await guard.call(refuse, what="register")
    assert info.value.rule_ids == ("INV-3",)
    assert guard.stats.attempts == 1
    assert sleeper.sleeps == []


async def test_breaker_refuses_after_threshold_without_calling() -> None:
    guard, _ = make_guard(attempts=2, threshold=2)
    calls = 0

    async def down() -> str:
        nonlocal calls
        calls += 1
        raise TimeoutError

    with pytest.raises(TransientPeerError):
        await guard.call(down, what="x")
    with pytest.raises(CircuitOpenError) as info:
        await guard.call(down, what="x")
    assert calls == 2
    assert info.value.not_before == NOW + timedelta(seconds=10)
    assert guard.stats.refused_by_breaker == 1


async def test_maintenance_window_holds_without_calling() -> None:
    guard, _ = make_guard(windows=("fixed 2026-11-24T11:00 2026-11-24T13:00",))
    called = False

    async def op() -> str:
        nonlocal called
        called = True
        return "x"

    with pytest.raises(PeerInMaintenance) as info:
        await guard.call(op, what="x")
    assert not called
    assert info.value.retry_at == datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    health = await guard.probe(op)
    assert health.state is HealthState.MAINTENANCE
    assert not health.ok


async def test_unclassified_errors_propagate_unchanged() -> None:
    guard, _ = make_guard()

    async def bug() -> str:
        raise KeyError("programming error")

    with pytest.raises(KeyError):
        await guard.call(bug, what="x")
    assert guard.stats.attempts == 1


async def test_probe_reports_up_and_down() -> None:
    guard, _ = make_guard()

    async def up() -> str:
        return "250 OK"

    async def down() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    assert (await guard.probe(up)).ok
    health = await guard.probe(down)
    assert health.state is HealthState.DOWN
    assert "refused" in health.detail


def test_settings_build_the_machinery_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    class DemoSettings(ConnectorSettings):
        model_config = SettingsConfigDict(env_prefix="HUB_DEMO_")

    monkeypatch.setenv("HUB_DEMO_RETRY_ATTEMPTS", "5")
    monkeypatch.setenv("HUB_DEMO_MAINTENANCE", '["monthly 3 wed 18:30-23:00"]')
    settings = DemoSettings()
    assert settings.retry_policy().attempts == 5
    assert not settings.calendar().is_open(datetime(2026, 11, 18, 10, 0, tzinfo=UTC))
    monkeypatch.setenv("HUB_DEMO_MAINTENANCE", '["every full moon"]')
    with pytest.raises(ValueError, match="not understood"):
        DemoSettings()


def test_errors_speak_the_hubs_attributes() -> None:
    violation = RuleViolation(rule_id="INV-1", message_ja="登録番号が不正です",
                              message_en="bad issuer number", next_step_ja="訂正してください",
                              next_step_en="correct it")
    refusal = PermanentPeerError("erp", "refused", (violation,))
    assert refusal.permanent
    assert not refusal.retryable
    assert refusal.rule_ids == ("INV-1",)
    assert refusal.text_ja == "INV-1: 登録番号が不正です 訂正してください"
    assert refusal.text_en == "INV-1: bad issuer number correct it"
    transient = TransientPeerError("mail", "down", attempts=2,
                                   history=("attempt 1: refused", "attempt 2: refused"))
    assert not transient.permanent
    assert transient.detail == "[mail] down [attempt 1: refused; attempt 2: refused]"
    hold = PeerInMaintenance("erp", NOW + timedelta(hours=1))
    assert not hold.permanent
    assert hold.retry_at == NOW + timedelta(hours=1)
    with pytest.raises(ValueError, match="aware"):
        PeerInMaintenance("erp", datetime(2026, 11, 24, 12, 0))
