"""The shape of every connector, and the guard around every outbound call.

A connector package holds the same few modules (docs/connectors.md):
``settings.py`` (a :class:`~connectors._shared.settings.ConnectorSettings`),
``mapping.py`` (canonical messages ↔ the peer's format, pure), ``adapter.py``
(the client that talks to the peer and classifies its errors),
``connector.py`` (the async entry point the hub calls: a :class:`Connector`) and
``peer.py`` (a real reference peer for tests and the local default).

:class:`Guard` wraps each outbound call in, in this order: the maintenance
calendar (WIN-2, WIN-3: held, not failed), the circuit breaker, a deadline, and
the retry policy. What comes out is the call's result or one classified error
from :mod:`connectors._shared.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from connectors._shared.errors import (
    CircuitOpenError,
    ConnectorError,
    PeerInMaintenance,
    TransientPeerError,
)
from connectors._shared.health import Health, HealthCheck, HealthState
from connectors._shared.policy import BreakerState, CircuitBreaker, RetryPolicy, default_classify
from connectors._shared.settings import ConnectorSettings
from connectors._shared.windows import MaintenanceCalendar

__all__ = ["Connector", "Guard", "GuardStats", "ReferencePeer"]

T = TypeVar("T")
Classifier = Callable[[str, BaseException], ConnectorError | None]

log = logging.getLogger(__name__)


@dataclass
class GuardStats:
    """Counters of one guard, for health details, tests and benchmarks."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    succeeded: int = 0
    transient_failures: int = 0
    permanent_failures: int = 0
    held_for_maintenance: int = 0
    refused_by_breaker: int = 0


class Guard:
    """Maintenance calendar + circuit breaker + deadline + retry policy of one connector."""

    def __init__(self, name: str, *, policy: RetryPolicy, breaker: CircuitBreaker,
                 calendar: MaintenanceCalendar, timeout_s: float,
                 classify: Classifier = default_classify,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.name = name
        self.policy = policy
        self.breaker = breaker
        self.calendar = calendar
        self.timeout_s = timeout_s
        self.stats = GuardStats()
        self._classify = classify
        self._now = now
        self._sleep = sleep

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings,
                      classify: Classifier = default_classify) -> Guard:
        return cls(name, policy=settings.retry_policy(), breaker=settings.circuit_breaker(),
                   calendar=settings.calendar(), timeout_s=settings.timeout_s, classify=classify)

    def _circuit_open(self, history: list[str]) -> CircuitOpenError:
        self.stats.refused_by_breaker += 1
        not_before = self._now() + timedelta(seconds=self.breaker.seconds_until_trial())
        return CircuitOpenError(self.name, not_before, attempts=len(history),
                                history=tuple(history))

    async def call(self, op: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run ``op`` under the guard; ``what`` names the operation in logs and errors."""
        self.stats.calls += 1
        try:
            self.calendar.check(self.name, self._now())
        except PeerInMaintenance:
            self.stats.held_for_maintenance += 1
            raise
        history: list[str] = []
        for attempt in range(1, self.policy.attempts + 1):
            if not self.breaker.allow():
                raise self._circuit_open(history)
            self.stats.attempts += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await op()
            except Exception as exc:
                error = self._classify(self.name, exc)
                if error is None:
                    raise
                if not self.policy.should_retry(error):
                    # The peer answered (a refusal or "in maintenance"): it is up.
                    self.breaker.record_success()
                    if isinstance(error, PeerInMaintenance):
                        self.stats.held_for_maintenance += 1
                    else:
                        self.stats.permanent_failures += 1
                    raise error from exc
                self.breaker.record_failure()
                self.stats.transient_failures += 1
                history.append(f"attempt {attempt}: {error.reason}")
                log.warning("%s %s failed (attempt %d/%d): %s", self.name, what, attempt,
                            self.policy.attempts, error.reason)
                if attempt == self.policy.attempts:
                    raise TransientPeerError(
                        self.name, f"{what}: {error.reason} (after {attempt} attempts)",
                        attempts=attempt, history=tuple(history),
                    ) from exc
                self.stats.retries += 1
                await self._sleep(self.policy.delay(attempt))
            else:
                self.breaker.record_success()
                self.stats.succeeded += 1
                return result
        raise AssertionError("unreachable: the loop returns or raises")

    async def probe(self, probe: Callable[[], Awaitable[str]]) -> Health:
        """A health answer: maintenance and an open breaker first, then ``probe``.

        The probe does not go through the retry policy nor move the breaker: a
        readiness check must not change how real work is treated.
        """
        closed = self.calendar.closed_until(self._now())
        if closed is not None:
            return Health(self.name, HealthState.MAINTENANCE,
                          f"{closed[1]} until {closed[0].isoformat()}")
        if self.breaker.state is BreakerState.OPEN:
            wait = self.breaker.seconds_until_trial()
            return Health(self.name, HealthState.CIRCUIT_OPEN, f"trial call in {wait:.1f}s")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                detail = await probe()
        except Exception as exc:
            error = self._classify(self.name, exc)
            reason = error.reason if error else f"{type(exc).__name__}"
            return Health(self.name, HealthState.DOWN, reason)
        return Health(self.name, HealthState.UP, detail,
                      latency_ms=(time.perf_counter() - started) * 1000)


class Connector(HealthCheck, Protocol):
    """What the hub needs of every connector, besides its own async entry points."""

    name: str
    settings: ConnectorSettings
    guard: Guard

    async def aclose(self) -> None:
        """Release connections and threads."""


class ReferencePeer(Protocol):
    """A real stand-in for the outside system, on loopback (tests, local default)."""

    @property
    def url(self) -> str:
        """Where the connector reaches it."""

    def start(self) -> None:
        """Start serving (returns once it accepts connections)."""

    def stop(self) -> None:
        """Stop serving and release the port."""
