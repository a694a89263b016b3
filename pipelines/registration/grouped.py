"""A dict that also files its keys by groups of their values: look-ups instead of scans.

The rules ask a World for "the cards of this user ID" and "the contractors that look like
this company" (REG-11) once per registration. As scans of every card and contractor a
batch holds, that cost grew with the square of the batch size, which kept batches small
(the registration consumer takes 2,000 records per batch now, hub/bootstrap.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["Grouped"]

K = TypeVar("K")
V = TypeVar("V")


class Grouped(dict[K, V]):
    """``dict`` whose every change also files the key under ``groups_of(value)``."""

    __slots__ = ("_groups", "_groups_of")

    def __init__(self, groups_of: Callable[[V], Iterable[Hashable]],
                 items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        super().__init__()
        self._groups_of = groups_of
        self._groups: dict[Hashable, dict[K, None]] = {}
        self.update(items)

    def group(self, name: Hashable) -> list[V]:
        """The values filed under ``name``, in the order their keys were filed."""
        return [dict.__getitem__(self, k) for k in self._groups.get(name, ())]

    def __setitem__(self, key: K, value: V) -> None:
        if dict.__contains__(self, key):
            self._unfile(key, dict.__getitem__(self, key))
        dict.__setitem__(self, key, value)
        for name in self._groups_of(value):
            self._groups.setdefault(name, {})[key] = None

    def __delitem__(self, key: K) -> None:
        self._unfile(key, dict.__getitem__(self, key))
        dict.__delitem__(self, key)

    def _unfile(self, key: K, value: V) -> None:
        for name in self._groups_of(value):
            members = self._groups.get(name)
            if members is not None:
                members.pop(key, None)
                if not members:
                    del self._groups[name]

    def update(self, items: Any = (), /, **more: V) -> None:
        for key, value in (items.items() if hasattr(items, "items") else items):
            self[key] = value
        for key, value in more.items():
            self[key] = value  # type: ignore[index]

    def __ior__(self, items: Any) -> Grouped[K, V]:  # type: ignore[override,misc]
        self.update(items)
        return self

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        if not dict.__contains__(self, key):
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key: K, *default: Any) -> Any:
        if dict.__contains__(self, key):
            value = dict.__getitem__(self, key)
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[K, V]:
        key = next(reversed(self))
        return key, self.pop(key)

    def clear(self) -> None:
        dict.clear(self)
        self._groups.clear()

    def copy(self) -> dict[K, V]:
        return dict(self)
