"""What hub/bootstrap.py's default wiring runs for the contract process (CON-1 … CON-7).

    policy = contract.policy_from_settings(settings)
    wiring.consumers.extend(contract.consumers(policy=policy, cloudsign_store=...))
    wiring.consumers.append(contract.city_signer_consumer(engine, city_signer, book=book))
    wiring.jobs.extend(contract.jobs(interval_s=settings.contract.job_interval_s))
    wiring.routers.append(archive_router(engine, roots, identity=..., policy=policy))
    wiring.routers.append(review_router(engine, policy=policy))       # .review_api

The process manager's handler (pipelines/contract) queues the contractor's signing job
through the :class:`~pipelines.ports.SigningJobs` port; :class:`GatewaySigningJobs`
provides it with the card gateway's jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.consumers import ConsumerSpec
from hub.contract.jobs import (
    accept_contractor_signature,
    city_signer_consumer,
    collect_contractor_signatures,
    expire_review_links,
)
from hub.gateway.jobs import create_job
from hub.runtime import ScheduledJob
from hub.settings import Settings
from pipelines.contract.handlers import EVENTS, ContractHandlers, DocumentBridge
from pipelines.contract.state import ContractPolicy
from schemas.application import CorrectionRequested
from schemas.cloudsign import ContractSendRequested
from schemas.envelope import utc_now
from schemas.erp import ErpRegistrationRequested
from schemas.mail import MailRequested
from schemas.topics import Topics

__all__ = [
    "GatewaySigningJobs",
    "accept_contractor_signature",
    "city_signer_consumer",
    "consumers",
    "jobs",
    "policy_from_settings",
]


def policy_from_settings(settings: Settings) -> ContractPolicy:
    """The city's contract policy from ``HUB_CONTRACT__*`` (review-link TTL and base URL;
    the base URL defaults to the hub's public base URL + /contract/review, https when the
    hub serves TLS)."""
    c = settings.contract
    return ContractPolicy(
        review_link_ttl=timedelta(hours=c.review_link_ttl_hours),
        review_base_url=c.review_base_url or f"{settings.public_base()}/contract/review")


class GatewaySigningJobs:
    """The :class:`~pipelines.ports.SigningJobs` port on the card gateway's signing jobs."""

    def create_job(self, session: Session, *, network: str, user_id: str,
                   procuring_entity: str, subject: str, parties: list[str], amount_yen: int,
                   document: bytes, now: datetime) -> str:
        return create_job(session, network=network, user_id=user_id,
                          procuring_entity=procuring_entity, subject=subject, parties=parties,
                          amount_yen=amount_yen, document=document, now=now).id


def consumers(*, policy: ContractPolicy | None = None,
              cloudsign_store: DocumentBridge | None = None) -> list[ConsumerSpec]:
    """The process manager: its commands, CloudSign's events (CON-1 … CON-4), the
    surety pipeline's 契約保証 completion (SUR-6) and the online 電子契約利用申出書 (CON-1,
    corrections back to the online system); on conclusion the ERP's 契約登録.
    ``policy``: the city's contract policy (:func:`policy_from_settings`; the defaults
    otherwise). ``cloudsign_store``: the CloudSign connector's document store
    (``CloudSignConnector().store``), for the CloudSign route.
    The contractor's signing jobs go to the card gateway (:class:`GatewaySigningJobs`)."""
    handlers = ContractHandlers(policy=policy or ContractPolicy(),
                                signing_jobs=GatewaySigningJobs(),
                                cloudsign_store=cloudsign_store)
    return [ConsumerSpec(
        "contract", (Topics.CONTRACT_COMMANDS, Topics.CONTRACT_EVENTS, Topics.SURETY_EVENTS,
                     Topics.APPLICATION_EVENTS),
        handlers=handlers.handlers,
        description="電子契約の締結: CON-1 … CON-4; card route and CloudSign route; the "
        "online 電子契約利用申出書 and its corrections",
        emits=((Topics.CONTRACT_EVENTS, EVENTS),
               (Topics.CONTRACT_COMMANDS, (ContractSendRequested,)),
               (Topics.APPLICATION_COMMANDS, (CorrectionRequested,)),
               (Topics.MAIL_REQUESTS, (MailRequested,)),
               (Topics.ERP_COMMANDS, (ErpRegistrationRequested,))))]


def jobs(*, interval_s: float = 30.0, clock: Callable[[], datetime] = utc_now,
         ) -> list[ScheduledJob]:
    """Review-link timeouts (CON-3) and, as a fallback, contractor signatures the gateway
    did not hand over itself. Run by the process holding the job's lease (hub/leases.py).
    The city's signing is a consumer (:func:`city_signer_consumer`). ``interval_s``: the
    settings' ``contract.job_interval_s`` (``HUB_CONTRACT__JOB_INTERVAL_S``)."""

    async def timeouts(engine: Engine) -> Any:
        def once() -> tuple[int, int]:
            with Session(engine) as session, session.begin():
                now = clock()
                return expire_review_links(session, now), collect_contractor_signatures(
                    session, now)

        return await asyncio.to_thread(once)

    return [ScheduledJob("contract-timeouts", interval_s, timeouts)]
