"""One retry policy and one circuit breaker per connector.

:class:`RetryPolicy` retries transient failures inside one delivery, with
exponential backoff and full jitter (AWS Architecture Blog, "Exponential Backoff
And Jitter", 2015), so many hub processes that lose a peer together do not come
back in step. Only :class:`~connectors._shared.errors.TransientPeerError` is
retried; a permanent answer or a maintenance window ends the call at once.

:class:`CircuitBreaker` (Nygard, *Release It!*): closed → open after
``failure_threshold`` consecutive transient failures; open → half-open after
``reset_timeout``; one trial call in half-open closes it on success, reopens it on
failure. Only transient failures count: a peer that answers "no" is up.
The breaker lives on one asyncio event loop and is not shared across threads.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors._shared.errors import ConnectorError, TransientPeerError

__all__ = ["BreakerState", "CircuitBreaker", "RetryPolicy", "default_classify"]


def default_classify(connector: str, exc: BaseException) -> ConnectorError | None:
    """Network-level failures are transient; anything else is not ours to guess.

    Adapters translate their library's errors themselves; this catches what is
    left: timeouts and refused or reset connections.
    """
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, TimeoutError):
        return TransientPeerError(connector, f"timeout: {type(exc).__name__}")
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc)
        return TransientPeerError(connector, f"network: {type(exc).__name__}: {detail}")
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a connector retries a transient failure.

    ``attempts`` counts every call, the first included. Delay before retry *n*
    (1-based) is uniform in ``[0, min(max_delay, base_delay * multiplier**(n-1))]``.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")

    def ceiling(self, retry: int) -> float:
        """The largest delay before retry number ``retry`` (1-based)."""
        return min(self.max_delay, self.base_delay * self.multiplier ** (retry - 1))

    def delay(self, retry: int) -> float:
        """A jittered delay before retry number ``retry`` (1-based)."""
        return self.rng.uniform(0.0, self.ceiling(retry))

    @staticmethod
    def should_retry(exc: ConnectorError) -> bool:
        """Only transient failures are retried in place (not windows, not refusals)."""
        return isinstance(exc, TransientPeerError)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    """Calls pass; consecutive transient failures are counted."""
    OPEN = "open"
    """Calls are refused at once with CircuitOpenError until the reset timeout passes."""
    HALF_OPEN = "half-open"
    """One trial call passes; its outcome closes or reopens the breaker."""


class CircuitBreaker:
    """Stops calling a peer that keeps failing, and probes it again later."""

    def __init__(self, failure_threshold: int = 5, reset_timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1 or reset_timeout < 0:
            raise ValueError("failure_threshold must be >= 1 and reset_timeout >= 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if (self._state is BreakerState.OPEN
                and self._clock() - self._opened_at >= self.reset_timeout):
            self._state = BreakerState.HALF_OPEN
            self._trial_in_flight = False
        return self._state

    def seconds_until_trial(self) -> float:
        """How long until a trial call may pass (0 when calls pass now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                self.times_opened += 1
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._trial_in_flight = False
