"""What operators see of the connectors: their health in ``/readyz``, their guards in metrics.

:class:`ConnectorWatch` holds the connectors ``hub run`` built (hub/bootstrap.py) and

- answers each one's ``health()`` for ``/readyz`` (all probed at once, each bounded by
  ``PROBE_TIMEOUT_S``, the answers kept ``CACHE_S`` so that frequent probes do not load
  the peers). A peer that is down, in maintenance or behind an open breaker does not make
  the hub unready: its work waits on its topic or in the retry table and nothing is lost;
  ``/readyz`` reports it under ``connectors`` for people and dashboards;
- exposes, at every scrape, each connector's :class:`~connectors._shared.base.Guard`:
  circuit-breaker state, whether an announced maintenance window is open now and when it
  ends, and the guard's counters (``GuardStats``). A connector without a guard (or not
  built yet) is simply absent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

__all__ = ["ConnectorWatch"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
CACHE_S = 5.0
BREAKER_STATES = ("closed", "open", "half-open")
_STATS = (
    ("calls", "hub_connector_calls", "Calls made through the connector's guard"),
    ("attempts", "hub_connector_attempts", "Attempts, retries included"),
    ("retries", "hub_connector_retries", "Retries after a transient failure"),
    ("succeeded", "hub_connector_succeeded", "Calls that succeeded"),
    ("transient_failures", "hub_connector_transient_failures",
     "Attempts that failed transiently (network, timeout, 5xx)"),
    ("permanent_failures", "hub_connector_permanent_failures",
     "Calls the peer refused for good"),
    ("held_for_maintenance", "hub_connector_held_for_maintenance",
     "Calls held because the peer was in maintenance (an announced window, or the peer "
     "said so)"),
    ("refused_by_breaker", "hub_connector_refused_by_breaker",
     "Calls refused at once by the open circuit breaker"),
)


class ConnectorWatch:
    """The connectors of one hub, by name (the consumer name, e.g. ``connector.mail``)."""

    def __init__(self, connectors: Mapping[str, Any]) -> None:
        self.connectors = dict(connectors)
        self._cache: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()
        _COLLECTOR.watch(self)

    def close(self) -> None:
        _COLLECTOR.unwatch(self)

    async def health(self) -> dict[str, dict[str, Any]]:
        """Each connector's health, as ``/readyz`` shows it (never raises)."""
        async with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < CACHE_S:
                return self._cache[1]
            names = [n for n, c in self.connectors.items() if hasattr(c, "health")]
            answers = await asyncio.gather(*(self._probe(n) for n in names))
            result = dict(zip(names, answers, strict=True))
            self._cache = (time.monotonic(), result)
            return result

    async def _probe(self, name: str) -> dict[str, Any]:
        connector = self.connectors[name]
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                health = await connector.health()
        except Exception as exc:  # a health check must not raise; one that does is down
            return {"ok": False, "state": "down",
                    "detail": f"health check failed: {type(exc).__name__}"}
        out: dict[str, Any] = {"ok": bool(health.ok), "state": str(health.state),
                               "detail": health.detail}
        if health.latency_ms is not None:
            out["latency_ms"] = round(health.latency_ms, 1)
        guard = getattr(connector, "guard", None)
        if guard is not None:
            out["circuit"] = str(guard.breaker.state)
            out["stats"] = {field: getattr(guard.stats, field) for field, _, _ in _STATS}
        return out

    def guards(self) -> Iterator[tuple[str, Any]]:
        for name, connector in self.connectors.items():
            guard = getattr(connector, "guard", None)
            if guard is not None:
                yield name, guard


class _GuardCollector(Collector):
    """Reads the watched guards at scrape time (nothing to keep in step)."""

    def __init__(self) -> None:
        self._watches: list[ConnectorWatch] = []

    def watch(self, watch: ConnectorWatch) -> None:
        self._watches.append(watch)

    def unwatch(self, watch: ConnectorWatch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)

    def describe(self) -> list[Any]:
        return []  # collected lazily: families vary with the watched connectors

    def collect(self) -> Iterator[Any]:
        state = GaugeMetricFamily("hub_connector_circuit_state",
                                  "1 for the circuit breaker's current state, else 0",
                                  labels=["connector", "state"])
        opened = CounterMetricFamily("hub_connector_circuit_opened",
                                     "Times the circuit breaker opened", labels=["connector"])
        window = GaugeMetricFamily("hub_connector_maintenance",
                                   "1 while an announced maintenance window of the peer is "
                                   "open (WIN-2, WIN-3), else 0", labels=["connector"])
        window_end = GaugeMetricFamily("hub_connector_maintenance_end_timestamp_seconds",
                                       "When the open maintenance window ends (Unix time)",
                                       labels=["connector"])
        counters = {field: CounterMetricFamily(metric, text, labels=["connector"])
                    for field, metric, text in _STATS}
        now = datetime.now(UTC)
        seen: set[str] = set()
        for watch in list(self._watches):
            for name, guard in watch.guards():
                if name in seen:
                    continue
                seen.add(name)
                try:
                    current = str(guard.breaker.state)
                    for s in BREAKER_STATES:
                        state.add_metric([name, s], 1.0 if s == current else 0.0)
                    opened.add_metric([name], float(guard.breaker.times_opened))
                    closed = guard.calendar.closed_until(now)
                    window.add_metric([name], 0.0 if closed is None else 1.0)
                    if closed is not None:
                        window_end.add_metric([name], closed[0].timestamp())
                    for field, family in counters.items():
                        family.add_metric([name], float(getattr(guard.stats, field)))
                except Exception:  # a scrape must not fail for one connector
                    log.exception("metrics of connector %s could not be read", name)
        yield from (state, opened, window, window_end, *counters.values())


_COLLECTOR = _GuardCollector()
REGISTRY.register(_COLLECTOR)
