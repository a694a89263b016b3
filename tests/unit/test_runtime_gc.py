"""The hub settles the garbage collector once started (hub.runtime.settle_garbage_collector)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hub.runtime import GC_YOUNG_THRESHOLD, settle_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_long_lived_objects_are_frozen_and_young_collections_are_rarer() -> None:
    gc.unfreeze()
    _, older, oldest = gc.get_threshold()
    settle_garbage_collector()
    assert gc.get_freeze_count() > 1000  # the modules, classes and wiring loaded so far
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)
    # Objects made afterwards are still collected: a cycle made now is found.
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
