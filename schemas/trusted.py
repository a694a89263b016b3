"""Building pydantic models from parts that are validated already, without validating again.

The rules build several events, mails and contacts per decision from fields of validated
commands, 資格審査情報 and policy; the hub wraps each event in an envelope whose every part
it made itself or took from a validated message. Validating those again is a large share
of their cost. Never for input from outside: commands are validated in full.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["trusted"]

M = TypeVar("M", bound=BaseModel)

_LAYOUTS: dict[type[BaseModel], tuple[dict[str, Any], frozenset[str]]] = {}
# The four slots a pydantic model instance holds (what validation and model_construct
# fill), set through BaseModel's own slot descriptors: no attribute lookup per object.
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__


def _layout(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    """Per model: every field in order with its default, and the required names.

    A field with a default factory counts as required, so that no mutable default is
    shared between objects.
    """
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


def trusted(cls: type[M], /, **values: Any) -> M:
    """``cls(**values)`` without validation, for objects built from validated parts only.

    What ``model_construct`` is for, at a fraction of its cost (it handles aliases and
    extras these strict models do not have, and is slower than validating on pydantic
    2.14). The result equals the validated object, fields set included (a test compares
    them).
    """
    defaults, required = _LAYOUTS.get(cls) or _layout(cls)
    fields = {**defaults, **values}
    # An unknown name would add a key; a missing one would keep its placeholder.
    if len(fields) != len(defaults) or not required <= values.keys():
        raise TypeError(f"{cls.__name__}: needs {sorted(required)}, got {sorted(values)}")
    made = object.__new__(cls)
    _SET_DICT(made, fields)
    _SET_FIELDS_SET(made, set(values))
    _SET_EXTRA(made, None)
    _SET_PRIVATE(made, None)
    return made
