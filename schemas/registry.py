"""The registry of message payload types and versions.

A payload class is declared once with :func:`message`; the hub decodes a record
by looking its ``(type, schema_version)`` up here, so a type or version that no
code declares is refused as poison instead of being half-read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = ["REGISTRY", "MessageRegistry", "Payload", "UnknownMessageType", "message"]


class Payload(BaseModel):
    """Base of every payload: strict, immutable, no unknown fields.

    ``message_type`` and ``schema_version`` are set by :func:`message`.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    message_type: ClassVar[str]
    schema_version: ClassVar[int]


P = TypeVar("P", bound=type[Payload])


class UnknownMessageType(LookupError):
    """No payload class is registered for this type and version."""

    def __init__(self, message_type: str, version: int) -> None:
        super().__init__(f"unknown message type {message_type!r} version {version}")
        self.message_type = message_type
        self.version = version


class MessageRegistry:
    def __init__(self) -> None:
        self._types: dict[tuple[str, int], type[Payload]] = {}

    def register(self, message_type: str, version: int) -> Callable[[P], P]:
        def decorate(cls: P) -> P:
            key = (message_type, version)
            if key in self._types and self._types[key] is not cls:
                raise ValueError(f"message type {message_type!r} v{version} is declared twice")
            cls.message_type = message_type
            cls.schema_version = version
            self._types[key] = cls
            return cls

        return decorate

    def lookup(self, message_type: str, version: int) -> type[Payload]:
        try:
            return self._types[(message_type, version)]
        except KeyError:
            raise UnknownMessageType(message_type, version) from None

    def __iter__(self) -> Iterator[tuple[tuple[str, int], type[Payload]]]:
        return iter(sorted(self._types.items()))

    def __contains__(self, key: Any) -> bool:
        return key in self._types


REGISTRY = MessageRegistry()


def message(message_type: str, version: int = 1) -> Callable[[P], P]:
    """Declare a payload class as message ``message_type`` at ``version``."""
    return REGISTRY.register(message_type, version)
