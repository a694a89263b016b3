"""The JSON text a payload was sent with, reused where the same object is written again.

The registration pipeline writes its PropagationScheduled payload twice: in its event
and in the pending propagation's row (REG-9). ``model_dump_json`` of it cost about
9 µs per command, a twentieth of the handling (benchmarks/bench_registration.py).

Inside :func:`remembering` (the hub's batch transaction), :func:`schemas.wire.encode`
keeps each envelope's payload text, cut from the envelope's own text, by the payload
object's identity; :func:`model_json` gives it back for that object. Outside it, nothing
is kept and :func:`model_json` is ``model_dump_json``. The memo holds its objects, so an
identity cannot be reused while it lasts, and it ends with the block.

Payloads are frozen: their fields cannot be set again. A container field could still
be changed in place; no code does that to a message it has sent, and the change would
not reach the message already on the wire either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

__all__ = ["PAYLOAD_MARK", "keep", "model_json", "remembering"]

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
