"""How an envelope travels as a Kafka record, and how a record is read back.

Value: the envelope as UTF-8 JSON. Key: the correlation id, so one procurement
case (or one contractor) stays on one partition and in order. Headers repeat the
type, version and ids so that tools can route and inspect without parsing.
Reading refuses anything that is not exactly a known message, with a reason a
person can act on (see :class:`WireError`).
"""

from __future__ import annotations

import enum
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import fast
from schemas.envelope import Envelope, lookup_envelope
from schemas.registry import UnknownMessageType

__all__ = ["MAX_MESSAGE_BYTES", "Headers", "PoisonReason", "WireError", "decode", "encode"]

MAX_MESSAGE_BYTES = 1_048_576
"""Largest accepted record value. Documents travel by reference, not inline."""

Headers = list[tuple[str, bytes]]

H_TYPE = "x-message-type"
H_VERSION = "x-schema-version"
H_ID = "x-message-id"
H_CORRELATION = "x-correlation-id"
H_CONTENT = "content-type"


class PoisonReason(enum.StrEnum):
    """Why a record could not be read as a canonical message."""

    OVERSIZE = "oversize"
    """The value is larger than MAX_MESSAGE_BYTES."""
    NOT_JSON = "not-json"
    """The value is not UTF-8 JSON."""
    NOT_ENVELOPE = "not-envelope"
    """JSON, but no envelope: type or schema_version missing or of the wrong kind."""
    UNKNOWN_TYPE = "unknown-type"
    """No payload is registered for this type and version."""
    INVALID = "invalid"
    """The envelope or payload breaks its schema."""


_HINTS: dict[PoisonReason, tuple[str, str]] = {
    PoisonReason.OVERSIZE: (
        "メッセージが大きすぎます。文書はメッセージに埋め込まず、参照で送ってください。",
        "The message is too large. Send documents by reference, not inline.",
    ),
    PoisonReason.NOT_JSON: (
        "メッセージが JSON ではありません。送信元の設定を確認してください。",
        "The message is not JSON. Check the sender's serializer.",
    ),
    PoisonReason.NOT_ENVELOPE: (
        "標準エンベロープ（type, schema_version など）がありません。",
        "The canonical envelope (type, schema_version, ...) is missing.",
    ),
    PoisonReason.UNKNOWN_TYPE: (
        "このメッセージ種別・版はハブに登録されていません。送信元の版を確認してください。",
        "This message type and version is not known to the hub. Check the sender's version.",
    ),
    PoisonReason.INVALID: (
        "メッセージの内容がスキーマに合いません。項目の誤りを直して再送してください。",
        "The message does not match its schema. Correct the fields named and send it again.",
    ),
}


class WireError(ValueError):
    """A record that is not a canonical message. ``detail`` names what is wrong."""

    def __init__(self, reason: PoisonReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def text_ja(self) -> str:
        return _HINTS[self.reason][0]

    @property
    def text_en(self) -> str:
        return _HINTS[self.reason][1]


def encode(envelope: Envelope[Any]) -> tuple[bytes, bytes, Headers]:
    """``(key, value, headers)`` for one envelope."""
    value = fast.envelope_json(envelope).encode()
    headers: Headers = [
        (H_TYPE, envelope.type.encode()),
        (H_VERSION, str(envelope.schema_version).encode()),
        (H_ID, str(envelope.message_id).encode()),
        (H_CORRELATION, envelope.correlation_id.encode()),
        (H_CONTENT, b"application/json"),
    ]
    return envelope.correlation_id.encode(), value, headers


def header(headers: Any, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return bytes(value).decode("utf-8", "replace")
    return None


def _type_and_version(value: bytes, headers: Any) -> tuple[str, int]:
    message_type, version = header(headers, H_TYPE), header(headers, H_VERSION)
    if message_type is not None and version is not None and version.isdigit():
        return message_type, int(version)
    try:
        probe = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise WireError(PoisonReason.NOT_JSON, str(exc)) from None
    if not isinstance(probe, dict):
        raise WireError(PoisonReason.NOT_ENVELOPE, f"top level is {type(probe).__name__}")
    message_type, version_raw = probe.get("type"), probe.get("schema_version")
    if not isinstance(message_type, str) or not isinstance(version_raw, int):
        raise WireError(PoisonReason.NOT_ENVELOPE, "fields 'type' (string) and "
                        "'schema_version' (integer) are required")
    return message_type, version_raw


def decode(value: bytes | None, headers: Any = ()) -> Envelope[Any]:
    """Read one record value as an envelope, or raise :class:`WireError`."""
    if value is None:
        raise WireError(PoisonReason.NOT_JSON, "the record has no value (tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise WireError(PoisonReason.OVERSIZE, f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    message_type, version = _type_and_version(value, headers)
    try:
        cls = lookup_envelope(message_type, version)
    except UnknownMessageType as exc:
        raise WireError(PoisonReason.UNKNOWN_TYPE, str(exc)) from None
    try:
        envelope = cls.model_validate_json(value)
    except ValidationError as exc:
        reason = PoisonReason.INVALID
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            reason = PoisonReason.NOT_JSON
        raise WireError(reason, _summary(exc)) from None
    if (envelope.type, envelope.schema_version) != (message_type, version):
        raise WireError(PoisonReason.INVALID, "headers and body disagree on type or version")
    return envelope


def _summary(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
