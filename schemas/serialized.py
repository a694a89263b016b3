"""The JSON text a payload was sent with, reused where the same object is written again.

The registration pipeline writes its PropagationScheduled payload twice: in its event
and in the pending propagation's row (REG-9). ``model_dump_json`` of it cost about
9 µs per command, a twentieth of the handling (benchmarks/bench_registration.py).

Inside :func:`remembering` (the hub's batch transaction), :func:`schemas.wire.encode`
keeps each envelope's payload text, cut from the envelope's own text, by the payload
object's identity; :func:`model_json` gives it back for that object. Outside it, nothing
is kept and :func:`model_json` is ``model_dump_json``. The memo holds its objects, so an
identity cannot be reused while it lasts, and it ends with the block.

:func:`envelope_json` also builds the text of a payload whose last field holds a payload
sent before in the block: the PropagationScheduled event carries the CardRegistered
payload of the event before it as its ``source`` (REG-9), serialized a second time
otherwise.

Payloads are frozen: their fields cannot be set again. A container field could still
be changed in place; no code does that to a message it has sent, and the change would
not reach the message already on the wire either.
"""

from __future__ import annotations

import threading
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

__all__ = ["PAYLOAD_MARK", "envelope_json", "keep", "model_json", "remembering"]

PAYLOAD_MARK = ',"payload":'
"""What precedes the payload in an envelope's text. The payload is the envelope's last
field, and a JSON string cannot hold an unescaped quote, so the first occurrence is it."""

_state = threading.local()


@contextmanager
def remembering() -> Iterator[None]:
    """Keep payload texts (:func:`keep`) in this thread until the block ends."""
    outer = getattr(_state, "memo", None)
    _state.memo = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _state.memo = None


def keep(model: BaseModel, text: str) -> None:
    """Remember ``text`` as ``model``'s JSON, inside :func:`remembering` only."""
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    if memo is not None:
        memo[id(model)] = (model, text)


def model_json(model: BaseModel) -> str:
    """``model.model_dump_json()``, or the text ``model`` was sent with in this block."""
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    if memo is not None:
        hit = memo.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
    return model.model_dump_json()


def envelope_json(envelope: BaseModel) -> str:
    """``envelope.model_dump_json()``; a payload whose last field holds a payload whose
    text is kept takes that text in place of serializing it again."""
    payload = envelope.__dict__["payload"]
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    last = _last_field(type(payload)) if memo is not None else None
    if memo is None or last is None:
        return envelope.model_dump_json()
    value = payload.__dict__.get(last[0])
    hit = memo.get(id(value)) if type(value) in last[2] else None
    if hit is None or hit[0] is not value:
        return envelope.model_dump_json()
    head = payload.model_dump_json(exclude={last[0]})
    text = f'{head[:-1]}{"," if len(head) > 2 else ""}"{last[1]}":{hit[1]}}}'
    outer = envelope.model_dump_json(exclude={"payload"})
    return f"{outer[:-1]}{PAYLOAD_MARK}{text}}}"


_Last = tuple[str, str, frozenset[type[BaseModel]]]
_LAST: dict[type[BaseModel], _Last | None] = {}


def _models_in(annotation: Any) -> frozenset[type[BaseModel]]:
    """The model classes an annotation names (``M``, ``M | N``, ``Annotated[M | N, ...]``)."""
    if isinstance(annotation, type):
        return frozenset({annotation}) if issubclass(annotation, BaseModel) else frozenset()
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(_models_in(a) for a in typing.get_args(annotation)))
    return frozenset()


def _last_field(cls: type[BaseModel]) -> _Last | None:
    """(name, JSON key, model classes) of a model's last field, if its text may be put
    together from the other fields' text and that field's model's own text.

    Not for models that change their output (serializers, computed fields, which come
    after the fields, extra fields), nor where the field is left out, nor for a value of
    another class than the field names (it would be serialized as the field's class).
    """
    if cls in _LAST:
        return _LAST[cls]
    found: _Last | None = None
    fields = cls.model_fields
    decorators = cls.__pydantic_decorators__
    if (fields and not cls.model_computed_fields and not decorators.model_serializers
            and not decorators.field_serializers and cls.model_config.get("extra") != "allow"):
        name, info = list(fields.items())[-1]
        classes = _models_in(info.annotation)
        if classes and not info.exclude:
            found = (name, info.serialization_alias or info.alias or name, classes)
    _LAST[cls] = found
    return found
