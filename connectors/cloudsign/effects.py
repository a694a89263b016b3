"""The CloudSign connector as hub consumer effects (``connectors._shared.effects``).

Reading ``Topics.CONTRACT_COMMANDS``:

- ``ContractSendRequested`` → CloudSign → ``ContractSent`` on CONTRACT_EVENTS;
- ``ContractCompletionNotified`` (published by the webhook router's callback) →
  re-read through the API → ``ContractConcluded`` or ``ContractDeclined`` on
  CONTRACT_EVENTS, keyed by the case the hub found by the document id; nothing
  while the document is still in progress (a bounce notice).
"""

from __future__ import annotations

from typing import Any

from connectors._shared.effects import Effect, Emitter
from connectors.cloudsign.connector import CloudSignConnector
from schemas.cloudsign import ContractCompletionNotified, ContractSendRequested
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = ["effects"]


def effects(connector: CloudSignConnector) -> dict[type[Payload], Effect]:
    async def send(ctx: Emitter, envelope: Envelope[Any]) -> None:
        command: ContractSendRequested = envelope.payload
        ctx.emit(Topics.CONTRACT_EVENTS, await connector.send(command), cause=envelope,
                 correlation_id=command.case_id)

    async def notified(ctx: Emitter, envelope: Envelope[Any]) -> None:
        command: ContractCompletionNotified = envelope.payload
        outcome = await connector.conclude(command.document_id, command.case_id,
                                           command.status)
        if outcome is not None:
            ctx.emit(Topics.CONTRACT_EVENTS, outcome, cause=envelope,
                     correlation_id=outcome.case_id)

    return {ContractSendRequested: send, ContractCompletionNotified: notified}
