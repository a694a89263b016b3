"""The one envelope around every canonical message.

Fields (README, "Messages and delivery"): message id, type, schema version, correlation id (the
procurement case or the contractor), causation id, occurred-at (timezone-aware;
stored and sent in UTC, shown in Asia/Tokyo), procuring entity, producer.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas import fast
from schemas.registry import REGISTRY, Payload

__all__ = ["JST", "EntityCode", "Envelope", "caused_envelope", "envelope_class", "new_envelope",
           "utc_now"]

JST = timezone(timedelta(hours=9), "Asia/Tokyo")

P = TypeVar("P", bound=Payload)


_ENTITY_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
_ENTITY = re.compile(_ENTITY_PATTERN)
EntityCode = Annotated[str, Field(pattern=_ENTITY_PATTERN)]
_MAX_ID = 100
"""Longest type, correlation id and producer name."""
"""A procuring entity's code, e.g. ``saitama-pref``, ``yamaguchi-city``, ``mlit``."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[P]):
    """A canonical message: routing and tracing metadata around one payload."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    message_id: uuid.UUID
    type: str = Field(min_length=1, max_length=_MAX_ID)
    schema_version: int = Field(ge=1)
    correlation_id: str = Field(
        min_length=1,
        max_length=_MAX_ID,
        description="The procurement case (or, for registration, the contractor) this belongs to. "
        "It is the Kafka key: one case stays on one partition.",
    )
    causation_id: uuid.UUID | None = None
    occurred_at: AwareDatetime = Field(
        description="When it happened; always UTC (validation converts), sent as ...Z.")
    procuring_entity: EntityCode
    producer: str = Field(min_length=1, max_length=_MAX_ID)
    payload: P

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def occurred_at_jst(self) -> datetime:
        """``occurred_at`` as a person in Japan reads it."""
        return self.occurred_at.astimezone(JST)

    def caused(self, payload: Payload, *, producer: str, entity: str | None = None,
               occurred_at: datetime | None = None) -> Envelope[Any]:
        """A new message caused by this one, in the same case."""
        return new_envelope(
            payload,
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
            procuring_entity=entity or self.procuring_entity,
            producer=producer,
            occurred_at=occurred_at,
        )


@cache
def envelope_class(payload_cls: type[Payload]) -> type[Envelope[Any]]:
    """The concrete ``Envelope[payload_cls]`` (cached: pydantic builds it once)."""
    return Envelope[payload_cls]  # type: ignore[valid-type]


def new_envelope(
    payload: Payload,
    *,
    correlation_id: str,
    procuring_entity: str,
    producer: str,
    causation_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope[Any]:
    cls = envelope_class(type(payload))
    return cls(
        message_id=message_id or fast.random_id(),
        type=payload.message_type,
        schema_version=payload.schema_version,
        correlation_id=correlation_id,
        causation_id=causation_id,
        occurred_at=occurred_at or utc_now(),
        procuring_entity=procuring_entity,
        producer=producer,
        payload=payload,
    )


def caused_envelope(payload: Payload, cause: Envelope[Any], *, producer: str,
                    occurred_at: datetime, correlation_id: str | None = None,
                    entity: str | None = None) -> Envelope[Any]:
    """``cause.caused(payload, ...)`` for the hub's handlers, without validating again.

    Every part is validated already: the payload (built by validation or from validated
    parts), the ids and the entity taken from ``cause`` (validated when it was read), a new
    message id. What a handler passes explicitly (correlation id, entity, producer, time)
    is checked here, and anything unusual goes through :func:`new_envelope`, which
    validates in full and raises as it does. Validating again would only repeat checks
    already passed (docs/performance.md).
    """
    if ((correlation_id is not None and not 0 < len(correlation_id) <= _MAX_ID)
            or (entity is not None and _ENTITY.fullmatch(entity) is None)
            or not 0 < len(producer) <= _MAX_ID or occurred_at.tzinfo is None):
        return new_envelope(payload, correlation_id=correlation_id or cause.correlation_id,
                            causation_id=cause.message_id, producer=producer,
                            procuring_entity=entity or cause.procuring_entity,
                            occurred_at=occurred_at)
    return fast.build(
        envelope_class(type(payload)),
        message_id=fast.random_id(),
        type=payload.message_type,
        schema_version=payload.schema_version,
        correlation_id=correlation_id or cause.correlation_id,
        causation_id=cause.message_id,
        occurred_at=occurred_at.astimezone(UTC),
        procuring_entity=entity or cause.procuring_entity,
        producer=producer,
        payload=payload,
    )


def lookup_envelope(message_type: str, version: int) -> type[Envelope[Any]]:
    return envelope_class(REGISTRY.lookup(message_type, version))
