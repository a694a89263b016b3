"""The shape every connector shares: settings, errors, retry policy, circuit
breaker, maintenance windows (WIN-2, WIN-3), health checks and the call guard.

Integrators adding a connector copy the package layout described in
docs/connectors.md and build on these pieces.
"""

from connectors._shared.base import Connector, Guard, GuardStats, ReferencePeer
from connectors._shared.effects import Effect, Emitter
from connectors._shared.errors import (
    CircuitOpenError,
    ConnectorError,
    PeerInMaintenance,
    PermanentPeerError,
    TransientPeerError,
)
from connectors._shared.health import Health, HealthCheck, HealthState
from connectors._shared.policy import BreakerState, CircuitBreaker, RetryPolicy
from connectors._shared.settings import ConnectorSettings
from connectors._shared.windows import MaintenanceCalendar, parse_window

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Connector",
    "ConnectorError",
    "ConnectorSettings",
    "Effect",
    "Emitter",
    "Guard",
    "GuardStats",
    "Health",
    "HealthCheck",
    "HealthState",
    "MaintenanceCalendar",
    "PeerInMaintenance",
    "PermanentPeerError",
    "ReferencePeer",
    "RetryPolicy",
    "TransientPeerError",
    "parse_window",
]
