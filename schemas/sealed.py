"""Sealed fields: a credential inside a message travels and rests encrypted (DAT-3).

The 認証キー (SUR-1) must reach the D・Sure connector, so it rides in the message; on
Kafka (7 days, 30 in a dead-letter topic), in the outbox table and in ``hub dlq show``
it is only ever the text ``sealed:v1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext)>``.
A sealed field (``BeforeValidator(unseal)``, ``PlainSerializer(seal, when_used="json")``;
:data:`schemas.surety.AuthKey`) holds the clear value in memory (the code that uses it is
unchanged) and seals it whenever its model is serialized to JSON; validation opens a
sealed value, and a clear one is still accepted on input (then sealed on its way out).
The key id is the associated data, so a ciphertext cannot be passed off under another id.

Keys: :func:`use_field_keys` with ``kid=base64url(32 bytes)`` entries separated by
spaces; the first seals, every one opens, so a new key goes first and the old ones stay
until their messages have expired (rotation). The hub reads them from
``HUB_FIELD_KEYS`` (hub/settings.py). Without it every process uses :data:`DEMO_FIELD_KEYS`,
whose key is public: the production check (hub/production.py) refuses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEMO_FIELD_KEYS",
    "SEALED_PREFIX",
    "FieldKeys",
    "field_keys_are_demo",
    "parse_field_keys",
    "seal",
    "unseal",
    "use_field_keys",
]

SEALED_PREFIX = "sealed:v1:"
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_NONCE = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


DEMO_FIELD_KEYS = "demo=" + _b64(hashlib.sha256(
    b"procurement-hub embedded demo field key: public, never for production").digest())
"""The embedded default's key ring: known to everyone who reads this file."""


class FieldKeys:
    """A key ring: ``current`` seals, every key opens. Never shows a key."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current
        self.kids = tuple(keys)

    def __repr__(self) -> str:
        return f"FieldKeys(kids={self.kids!r}, current={self.current!r})"

    def seal(self, text: str) -> str:
        nonce = os.urandom(_NONCE)
        box = self._aead[self.current].encrypt(nonce, text.encode(), self.current.encode())
        return f"{SEALED_PREFIX}{self.current}:{_b64(nonce + box)}"

    def open(self, sealed: str) -> str:
        kid, _, body = sealed[len(SEALED_PREFIX):].partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise ValueError(f"sealed with key id {kid[:32]!r}, which is not in HUB_FIELD_KEYS")
        try:
            raw = _unb64(body)
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], kid.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
            raise ValueError("the sealed value cannot be opened with its key "
                             "(altered, or sealed with another key of that id)") from None


def parse_field_keys(spec: str) -> FieldKeys:
    """``kid=base64url(32 bytes) [kid=...]``; the error names the entry, never a key."""
    keys: dict[str, bytes] = {}
    for n, entry in enumerate(spec.split(), start=1):
        kid, sep, encoded = entry.partition("=")
        if not sep or not _KID.match(kid):
            raise ValueError(f"entry {n}: expected kid=base64url(32 bytes), kid of "
                             "letters, digits, '_', '.', '-' (at most 32)")
        try:
            key = _unb64(encoded)
        except (binascii.Error, ValueError):
            raise ValueError(f"entry {n} ({kid}): the key is not base64url") from None
        if len(key) != 32:
            raise ValueError(f"entry {n} ({kid}): the key must be 32 bytes (AES-256)")
        if kid in keys:
            raise ValueError(f"entry {n}: key id {kid} appears twice")
        keys[kid] = key
    if not keys:
        raise ValueError("no key given")
    return FieldKeys(keys, next(iter(keys)))


_lock = threading.Lock()
_ring = parse_field_keys(DEMO_FIELD_KEYS)
_ring_is_demo = True


def use_field_keys(spec: str | None) -> FieldKeys:
    """Seal and open with ``spec``'s keys from now on (``None``: the demo key ring)."""
    global _ring, _ring_is_demo
    ring = parse_field_keys(spec or DEMO_FIELD_KEYS)
    with _lock:
        _ring, _ring_is_demo = ring, spec is None or spec == DEMO_FIELD_KEYS
    return ring


def field_keys_are_demo() -> bool:
    return _ring_is_demo


def seal(value: str) -> str:
    """The sealed text of ``value`` under the current key."""
    return _ring.seal(value)


def unseal(value: Any) -> Any:
    """A sealed text opened; anything else unchanged (clear input, wrong types: the
    field's own checks judge those)."""
    if isinstance(value, str) and value.startswith(SEALED_PREFIX):
        return _ring.open(value)
    return value

