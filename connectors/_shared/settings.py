"""Settings every connector has: timeout, retry, circuit breaker, maintenance windows.

Each connector subclasses :class:`ConnectorSettings` with its own environment
prefix (``HUB_MAIL_``, ``HUB_ERP_``, ...), so ``HUB_ERP_RETRY_ATTEMPTS=5`` or
``HUB_ERP_MAINTENANCE='["monthly 3 wed 18:30-23:00"]'`` tune one connector only.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors._shared.policy import CircuitBreaker, RetryPolicy
from connectors._shared.windows import MaintenanceCalendar, parse_window

__all__ = ["ConnectorSettings", "run_dir"]


def run_dir() -> Path:
    """Where the local default keeps its files: ``HUB_RUN_DIR``, else ``.run`` in the
    project (the hub's RUN_DIR, hub/settings.py, is this same directory)."""
    return Path(os.environ.get("HUB_RUN_DIR", Path(__file__).resolve().parents[2] / ".run"))


class ConnectorSettings(BaseSettings):
    """The shared part of a connector's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    timeout_s: float = Field(default=10.0, gt=0, description="One call to the peer, at most.")
    retry_attempts: int = Field(default=3, ge=1, description="Calls per delivery, first included.")
    retry_base_s: float = Field(default=0.2, ge=0)
    retry_max_s: float = Field(default=5.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1, description="Failures in a row that open it.")
    breaker_reset_s: float = Field(default=30.0, ge=0, description="Open → half-open after this.")
    maintenance: tuple[str, ...] = Field(
        default=(), description="Windows in short form, e.g. 'monthly 3 wed 18:30-23:00' (WIN-2)."
    )

    @field_validator("maintenance")
    @classmethod
    def _windows_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            parse_window(spec)
        return value

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retry_attempts, self.retry_base_s, self.retry_max_s)

    def circuit_breaker(self) -> CircuitBreaker:
        return CircuitBreaker(self.breaker_failures, self.breaker_reset_s)

    def calendar(self) -> MaintenanceCalendar:
        return MaintenanceCalendar(parse_window(spec) for spec in self.maintenance)
