"""The hub's speed shortcuts, behind one plain API.

Every function here gives what the plain call named in its docstring gives, and only the
hot paths (the rules, envelopes, the wire, the batch writers) call it; everything else
uses the plain call. tests/unit/test_fast.py checks each one against its plain call.

- :func:`build` a message from parts validated already: ``cls(**values)``.
- make an id: :func:`random_id` is ``uuid.uuid4()``, :func:`uuid4_from` is
  ``uuid.UUID(bytes=..., version=4)``, :func:`uuid5` is ``uuid.uuid5(namespace, name)``,
  and :func:`text_of` is ``str(parts)`` of a tuple, for a name.
- serialize: :func:`envelope_json` is ``envelope.model_dump_json()`` and
  :func:`model_json` is ``model.model_dump_json()``; inside :func:`remembering` a payload
  sent once is not serialized again.

Why each is faster than its plain call is said where it is made (docs/performance.md
has the figures).
"""

from __future__ import annotations

import enum
import hashlib
import os
import threading
import types
import typing
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = [
    "build",
    "envelope_json",
    "members",
    "model_json",
    "random_id",
    "remembering",
    "text_of",
    "uuid4_from",
    "uuid5",
]

M = TypeVar("M", bound=BaseModel)


# -- build a message ------------------------------------------------------------------------

def build(cls: type[M], /, **values: Any) -> M:
    """``cls(**values)`` without validating again, for values that are validated already
    (fields of validated messages, policy, the rules' own results); never for input from
    outside.

    What ``model_construct`` is for, without its handling of aliases and extras (which
    these strict models do not have): the four slots pydantic fills are set directly. The
    result equals the validated object, fields set included. Missing required fields and
    unknown names raise ``TypeError``.
    """
    defaults, required = _LAYOUTS.get(cls) or _layout(cls)
    fields = {**defaults, **values}
    # An unknown name would add a key; a missing one would keep its placeholder. With no
    # unknown name, values naming as many fields as the model has name every field.
    if len(fields) != len(defaults) or (len(values) != len(defaults)
                                        and not values.keys() >= required):
        raise TypeError(f"{cls.__name__}: needs {sorted(required)}, got {sorted(values)}")
    made = object.__new__(cls)
    _SET_DICT(made, fields)
    _SET_FIELDS_SET(made, set(values))
    _SET_EXTRA(made, None)
    _SET_PRIVATE(made, None)
    return made


_LAYOUTS: dict[type[BaseModel], tuple[dict[str, Any], frozenset[str]]] = {}
# The slots of a pydantic model instance, set through BaseModel's own descriptors.
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _layout(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    """Per model: every field in order with its default, and the required names. A field
    with a default factory counts as required, so that no mutable default is shared."""
    defaults: dict[str, Any] = {}
    required: set[str] = set()
    for name, info in cls.model_fields.items():
        if info.is_required() or info.default_factory is not None:
            required.add(name)
            defaults[name] = None
        else:
            defaults[name] = info.default
    _LAYOUTS[cls] = defaults, frozenset(required)
    return _LAYOUTS[cls]


E = TypeVar("E", bound=enum.Enum)


def members(enum_class: type[E]) -> tuple[E, ...]:
    """``tuple(enum_class)``, made once per class (iterating an Enum class runs Python code
    for every member)."""
    found = _MEMBERS.get(enum_class)
    if found is None:
        found = _MEMBERS[enum_class] = tuple(enum_class)
    return found  # type: ignore[return-value]


_MEMBERS: dict[type[enum.Enum], tuple[enum.Enum, ...]] = {}


# -- make an id -----------------------------------------------------------------------------

def random_id() -> uuid.UUID:
    """``uuid.uuid4()``: 16 bytes of ``os.urandom``, version 4.

    Read 4 KiB at a time rather than 16 bytes per id: each ``os.urandom`` call releases the
    interpreter lock, so a thread making many ids beside another busy thread would switch
    at every id. A forked child starts with an empty pool: it never repeats its parent.
    """
    return uuid4_from(_pool.take())


def uuid4_from(sixteen: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=sixteen, version=4)``, equal in every attribute, without the
    checks ``UUID.__init__`` runs in Python."""
    return _uuid_of(int.from_bytes(sixteen) & _V4_KEEP | _V4_MARK)


def uuid5(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """``uuid.uuid5(namespace, name)`` (RFC 9562 §5.5): the SHA-1 state after the namespace
    is kept per namespace, and the UUID built without ``UUID.__init__``'s checks."""
    state = _SHA1_AFTER.get(namespace.int)
    if state is None:
        state = _SHA1_AFTER[namespace.int] = hashlib.sha1(namespace.bytes,
                                                          usedforsecurity=False)
    sha1 = state.copy()
    sha1.update(name.encode())
    made: uuid.UUID = object.__new__(uuid.UUID)  # as _uuid_of, inline: several per decision
    object.__setattr__(made, "int", int.from_bytes(sha1.digest()[:16]) & _V5_KEEP | _V5_MARK)
    object.__setattr__(made, "is_safe", _UNKNOWN)
    return made


def text_of(parts: tuple[object, ...]) -> str:
    """``str(parts)``: the reprs of the parts in a tuple's brackets. An enum member's repr
    (``Enum.__repr__`` runs in Python) is made once per member and kept."""
    inner = ", ".join([repr(part) if type(part) is str else _repr_kept(part)
                       for part in parts])
    return f"({inner},)" if len(parts) == 1 else f"({inner})"


def _repr_kept(part: object) -> str:
    """``repr(part)``, kept for an enum member."""
    text = _reprs.get(id(part))
    if text is None:
        text = repr(part)
        if isinstance(part, enum.Enum):
            _reprs[id(part)] = text
    return text


_reprs: dict[int, str] = {}
"""Enum members' reprs, by the member's identity: a member lives as long as its class, and
a str equal to a StrEnum member is not that member."""


_ALL_BITS = (1 << 128) - 1
# RFC 9562: the variant 0b10 in bits 64-65 and the version in bits 48-51, from the top.
_V4_KEEP = ~((0x3 << 62) | (0xF << 76)) & _ALL_BITS
_V4_MARK = (0x2 << 62) | (0x4 << 76)
_V5_KEEP = _V4_KEEP
_V5_MARK = (0x2 << 62) | (0x5 << 76)
_SHA1_AFTER: dict[int, Any] = {}
"""Per namespace (by its value): the SHA-1 state after its bytes."""
_UNKNOWN = uuid.SafeUUID.unknown


def _uuid_of(value: int) -> uuid.UUID:
    made: uuid.UUID = object.__new__(uuid.UUID)
    # UUID is immutable by a __setattr__ that raises; __init__ sets these two the same way.
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _UNKNOWN)
    return made


class _Pool:
    """``os.urandom`` read 256 ids at a time, handed out 16 bytes per id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.data = b""
        self.at = 0

    def take(self) -> bytes:
        with self.lock:
            if self.at >= len(self.data):
                self.data, self.at = os.urandom(16 * 256), 0
            start = self.at
            self.at = start + 16
            return self.data[start:start + 16]


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


# -- serialize ------------------------------------------------------------------------------
#
# Inside remembering() (the hub's batch transaction) envelope_json keeps each envelope's
# payload text, cut from the envelope's own text, by the payload object's identity;
# model_json gives it back for that object (a payload written again, in a row), and
# envelope_json puts it in place where the next payload's last field holds it (REG-9: the
# PropagationScheduled event carries the CardRegistered payload sent just before). The memo
# holds its objects, so an identity is not reused while it lasts; it ends with the block.
# Payloads are frozen; a container field could still be changed in place, which no code
# does to a message it has sent.

PAYLOAD_MARK = ',"payload":'
"""What precedes the payload in an envelope's text. The payload is the envelope's last
field, and a JSON string cannot hold an unescaped quote, so the first occurrence is it."""

_state = threading.local()


@contextmanager
def remembering() -> Iterator[None]:
    """Keep the payload texts :func:`envelope_json` makes in this thread until the block
    ends (blocks nest: the outermost one ends it)."""
    outer = getattr(_state, "memo", None)
    _state.memo = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _state.memo = None


def model_json(model: BaseModel) -> str:
    """``model.model_dump_json()``: the text ``model`` was sent with in this block, if it
    was."""
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    if memo is not None:
        hit = memo.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
    return model.model_dump_json()


def envelope_json(envelope: BaseModel) -> str:
    """``envelope.model_dump_json()`` for an envelope (its last field ``payload``).

    Inside :func:`remembering`: a payload whose last field holds a payload sent before in
    the block takes that text instead of serializing it again, and this payload's text is
    kept in turn."""
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    if memo is None:
        return envelope.model_dump_json()
    payload = envelope.__dict__["payload"]
    text = _spliced(envelope, payload, memo) or envelope.model_dump_json()
    _keep(payload, text[text.index(PAYLOAD_MARK) + len(PAYLOAD_MARK):-1])
    return text


def _keep(model: BaseModel, text: str) -> None:
    """Remember ``text`` as ``model``'s JSON, inside :func:`remembering` only."""
    memo: dict[int, tuple[Any, str]] | None = getattr(_state, "memo", None)
    if memo is not None:
        memo[id(model)] = (model, text)


def _spliced(envelope: BaseModel, payload: BaseModel,
             memo: dict[int, tuple[Any, str]]) -> str | None:
    last = _last_field(type(payload))
    if last is None:
        return None
    value = payload.__dict__.get(last[0])
    hit = memo.get(id(value)) if type(value) in last[2] else None
    if hit is None or hit[0] is not value:
        return None
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
