"""The D・Sure connector as a hub consumer effect (``hub.consumers.Effect`` shape).

``effects(connector)`` maps the command payload to an async ``(ctx, envelope)``
function that calls D・Sure and emits the answer; the hub's wiring puts it in a
``ConsumerSpec`` reading ``Topics.SURETY_COMMANDS``. Failures are raised as the
connector classified them, and the hub's processor acts on each: transient →
retried with backoff, then the dead-letter topic with the reason and history;
``PeerInMaintenance`` → held until ``retry_at`` (WIN-2); permanent → dead-letter.
A refusal by D・Sure (SUR-1) is emitted as ``SuretyLookupRefused``, not raised.
"""

from __future__ import annotations

from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors.dsure.connector import DSureConnector
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.surety import SuretyCheckRequested
from schemas.topics import Topics

__all__ = ["effects"]


def effects(connector: DSureConnector) -> dict[type[Payload], Effect]:
    """``SuretyCheckRequested`` → D・Sure → ``SuretyCertificateFetched`` / ``SuretyLookupRefused``
    on ``Topics.SURETY_EVENTS`` (same case)."""

    async def check(ctx: Emitter, envelope: Envelope[Any]) -> None:
        command: SuretyCheckRequested = envelope.payload
        ctx.emit(Topics.SURETY_EVENTS, await connector.check(command), cause=envelope)

    return {SuretyCheckRequested: check}
