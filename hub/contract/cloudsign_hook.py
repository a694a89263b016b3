"""CloudSign's completion webhook as the hub serves it (connectors.cloudsign.inbound).

The webhook names a document; the hub finds the case by the CloudSign document id its
own case state keeps (``pipelines.contract.store.case_by_cloudsign_document``), never
by the document's note. A document the hub did not send (the city's staff also use
CloudSign by hand, and its webhook covers every document of the team) is answered 200
and publishes nothing, so it causes no API call. For a hub document it publishes
``ContractCompletionNotified`` keyed by the case, one message id per (document, status):
the idempotent consumer drops repeats; the few most recent are not even written again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.cloudsign.inbound import notification_id, webhook_router
from connectors.cloudsign.settings import CloudSignSettings
from pipelines.contract.state import CaseState
from pipelines.contract.store import case_by_cloudsign_document
from schemas.cloudsign import ContractCompletionNotified
from schemas.envelope import Envelope, new_envelope
from schemas.topics import Topics, TopicSpec

__all__ = ["PRODUCER", "cloudsign_webhook"]

PRODUCER = "hub.webhook"
_RECENT = 1024

Publish = Callable[[TopicSpec, Envelope[Any]], Awaitable[None]]


def cloudsign_webhook(engine: Engine, publish: Publish,
                      settings: CloudSignSettings | None = None) -> APIRouter:
    """The router for ``/webhooks/cloudsign/{token}``; ``publish`` is
    ``OutboxPublisher.publish``."""
    settings = settings or CloudSignSettings()
    key = settings.webhook_token.get_secret_value().encode()
    recent: OrderedDict[tuple[str, int], None] = OrderedDict()

    def find(document_id: str) -> CaseState | None:
        with Session(engine) as session:
            return case_by_cloudsign_document(session, document_id)

    async def on_document(document_id: str, status: int) -> bool:
        case = await asyncio.to_thread(find, document_id)
        if case is None:
            return False
        if (document_id, status) in recent:
            return True  # already written; the consumer would drop it anyway
        await publish(Topics.CONTRACT_COMMANDS, new_envelope(
            ContractCompletionNotified(document_id=document_id, case_id=case.case_id,
                                       status=status),
            correlation_id=case.case_id, procuring_entity=case.procuring_entity,
            producer=PRODUCER, message_id=notification_id(key, document_id, status)))
        recent[(document_id, status)] = None
        if len(recent) > _RECENT:
            recent.popitem(last=False)
        return True

    return webhook_router(settings, on_document)
