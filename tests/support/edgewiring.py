"""``hub run --bootstrap tests.support.edgewiring:wiring``: every HTTP edge of the hub
(the card-agent gateway, the staff API, the review pages, both webhooks) with no
consumers, for probing the edges alone (the schemathesis pass).

From the environment: ``EDGE_CARD_ROOT`` (a PEM CA the gateway trusts),
``EDGE_STAFF_TOKEN``, ``EDGE_WEBHOOK_SECRET``, ``EDGE_CLOUDSIGN_TOKEN``, and
``EDGE_TOPIC_PREFIX``: what the webhooks announce goes to topics of that prefix, never to
the hub's own.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from connectors.application.inbound import webhook_router as application_hook
from connectors.application.settings import ApplicationSettings
from connectors.cloudsign.inbound import webhook_router as cloudsign_hook
from connectors.cloudsign.settings import CloudSignSettings
from hub.bootstrap import Wiring
from hub.contract.archive_api import archive_router
from hub.contract.review_api import review_router
from hub.db import create_db_engine
from hub.gateway import GatewaySettings, build_router, gateway_config
from hub.publisher import OutboxPublisher
from hub.settings import Settings
from hub.staff import StaffAuth, staff_only, token_sha256
from schemas.application import ApplicationSubmitted
from schemas.cloudsign import ContractCompletionNotified
from schemas.envelope import new_envelope
from schemas.topics import KeyKind, TopicSpec
from tests.support.staff import every_entity


def wiring(settings: Settings) -> Wiring:
    engine = create_db_engine(settings.database_url.get_secret_value())
    publisher = OutboxPublisher(engine)
    found = Wiring(engine=engine, publisher=publisher)
    prefix = os.environ.get("EDGE_TOPIC_PREFIX", "test.edge")
    announced = TopicSpec(f"{prefix}.webhooks", "what the webhooks announced", KeyKind.CASE,
                          partitions=1)

    async def on_submitted(application_id: str) -> None:
        await publisher.publish(announced, new_envelope(
            ApplicationSubmitted(application_id=application_id), correlation_id=application_id,
            procuring_entity="online-application", producer="hub.webhook"))

    async def on_document(document_id: str, status: int) -> bool:
        await publisher.publish(announced, new_envelope(
            ContractCompletionNotified(document_id=document_id, case_id=document_id,
                                       status=status),
            correlation_id=document_id, procuring_entity="cloudsign", producer="hub.webhook"))
        return True

    root = Path(os.environ["EDGE_CARD_ROOT"])
    config = gateway_config(engine, GatewaySettings(card_roots=(root,),
                                                    signature_roots=(root,)))
    found.routers.append(build_router(config))
    found.routers.append(staff_only(archive_router(
        engine, config.signature_roots, identity=every_entity(os.environ["EDGE_STAFF_TOKEN"])),
        StaffAuth([token_sha256(os.environ["EDGE_STAFF_TOKEN"])])))
    found.routers.append(review_router(engine))
    found.routers.append(application_hook(ApplicationSettings(
        webhook_secret=SecretStr(os.environ["EDGE_WEBHOOK_SECRET"])), on_submitted))
    found.routers.append(cloudsign_hook(CloudSignSettings(webhook_token=SecretStr(
        os.environ["EDGE_CLOUDSIGN_TOKEN"])), on_document))
    return found
