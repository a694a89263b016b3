"""The online application connector as hub consumer effects (``connectors._shared.effects``).

Reading ``Topics.APPLICATION_COMMANDS``:

- ``ApplicationSubmitted`` (published by the webhook router's callback and by the
  poller, with ``message_id_for(application_id)`` as message id) → fetch →
  ``ApplicationReceived`` on ``Topics.APPLICATION_EVENTS``, keyed by its case;
- ``CorrectionRequested`` → the application system → ``CorrectionSent`` on
  APPLICATION_EVENTS.
"""

from __future__ import annotations

from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors.application.connector import ApplicationConnector
from schemas.application import ApplicationSubmitted, CorrectionRequested
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["effects"]


def effects(connector: ApplicationConnector) -> dict[type[Payload], Effect]:
    async def submitted(ctx: Emitter, envelope: Envelope[Any]) -> None:
        command: ApplicationSubmitted = envelope.payload
        received = await connector.receive(command.application_id)
        ctx.emit(Topics.APPLICATION_EVENTS, received, cause=envelope,
                 correlation_id=received.case_id)

    async def correct(ctx: Emitter, envelope: Envelope[Any]) -> None:
        command: CorrectionRequested = envelope.payload
        ctx.emit(Topics.APPLICATION_EVENTS, await connector.send_correction(command),
                 cause=envelope)

    return {ApplicationSubmitted: submitted, CorrectionRequested: correct}
