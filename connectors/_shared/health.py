"""Health checks: one per connector, asked by the hub's readiness probe and CLI.

A check never raises: it answers :class:`Health` with a state a person can read
(up, down, maintenance, circuit open) and a short detail. It must not carry a
secret (no credentials in URLs or details).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Health", "HealthCheck", "HealthState"]


class HealthState(enum.StrEnum):
    UP = "up"
    """The peer answered the probe."""
    DOWN = "down"
    """The peer did not answer, or answered garbage."""
    MAINTENANCE = "maintenance"
    """Inside an announced window (WIN-2, WIN-3): work is held, not failed."""
    CIRCUIT_OPEN = "circuit-open"
    """Recent calls failed; the breaker refuses calls until its trial call."""


@dataclass(frozen=True)
class Health:
    connector: str
    state: HealthState
    detail: str = ""
    latency_ms: float | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """Work can go out now. Maintenance is expected, but it is not ``ok``."""
        return self.state is HealthState.UP


class HealthCheck(Protocol):
    async def health(self) -> Health:
        """Probe the peer (bounded by the connector's timeout); never raises."""
