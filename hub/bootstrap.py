"""Wiring: which consumers, scheduled jobs and HTTP routers ``hub run`` starts.

``hub run --bootstrap module:function`` swaps this for another wiring (an
integrator's own pipelines, or the test pipelines); the function takes the
settings and returns a :class:`Wiring`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.consumers import ConsumerSpec
from hub.runtime import ScheduledJob
from hub.settings import Settings

__all__ = ["Wiring", "default_wiring", "load_wiring"]


@dataclass
class Wiring:
    consumers: list[ConsumerSpec] = field(default_factory=list)
    jobs: list[ScheduledJob] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)


def default_wiring(settings: Settings) -> Wiring:
    """The hub's own pipelines and connectors."""
    return Wiring()


def load_wiring(ref: str | None, settings: Settings) -> Wiring:
    if not ref:
        return default_wiring(settings)
    module_name, _, attr = ref.partition(":")
    factory: Callable[[Settings], Wiring] = getattr(importlib.import_module(module_name),
                                                    attr or "wiring")
    return factory(settings)
