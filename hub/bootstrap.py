"""Wiring: which consumers, scheduled jobs and HTTP routers ``hub run`` starts.

The default wiring runs every pipeline and connector of the project against the
settings' database and the connectors' own settings (``HUB_MAIL_*``, ``HUB_ERP_*``,
...), whose defaults are the reference peers on loopback. ``hub run --bootstrap
module:function`` swaps it for another wiring (an integrator's own, or the tests').
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.consumers import ConsumerSpec
from hub.db import create_db_engine
from hub.outbox import enqueue
from hub.publisher import OutboxPublisher
from hub.runtime import ScheduledJob
from hub.settings import RUN_DIR, Settings
from schemas.envelope import new_envelope, utc_now
from schemas.registry import Payload
from schemas.topics import Topics

if TYPE_CHECKING:
    from hub.plugins import ConnectorRegistry

__all__ = [
    "EntityConfigError",
    "Wiring",
    "city_signer",
    "default_wiring",
    "entity_consumers",
    "invoice_consumer",
    "load_wiring",
    "staff_routers",
    "surety_consumer",
]

log = logging.getLogger(__name__)


@dataclass
class Wiring:
    engine: Engine
    consumers: list[ConsumerSpec] = field(default_factory=list)
    jobs: list[ScheduledJob] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)
    publisher: OutboxPublisher | None = None
    closers: list[Callable[[], Any]] = field(default_factory=list)
    """Called at shutdown (connectors' HTTP clients)."""
    settings: Settings | None = None

    def documents(self) -> Any:
        """The shared document store (hub/documents): the database's, in every process."""
        from hub.documents import SqlDocumentStore

        return SqlDocumentStore(self.engine)

    def links(self) -> Any:
        """CON-4 download links to this hub's own route, signed with ``HUB_MAIL_LINK_KEY``."""
        from connectors.mail.settings import MailSettings
        from hub.documents import LinkSigner

        base = (self.settings or Settings()).public_base()
        return LinkSigner(base, MailSettings().link_key.get_secret_value().encode())

    def mail_documents(self) -> Any:
        """What the mail connector attaches or links (CON-4), from the shared store."""
        from hub.documents.mail import MailDocuments

        return MailDocuments(self.documents(), self.links())

    connectors: dict[str, Any] = field(default_factory=dict)
    """The connectors by consumer name: their health in /readyz, their guards in /metrics."""
    plugins: ConnectorRegistry | None = None
    """The connector plugins started (the control API steers them)."""


def registration_consumer() -> ConsumerSpec:
    """The central pipeline of REG/CHG/RNW (利用者登録・変更・ICカード更新)."""
    from pipelines.registration import handlers
    from schemas import registration
    from schemas.mail import MailRequested

    events = tuple(v for v in vars(registration).values()
                   if isinstance(v, type) and issubclass(v, Payload) and v is not Payload
                   and v.__module__ == registration.__name__
                   and v not in handlers.HANDLERS)
    return ConsumerSpec(
        "registration",
        (Topics.REGISTRATION_COMMANDS, Topics.QUALIFICATION_UPDATES),
        handlers=handlers.HANDLERS,
        prepare=handlers.prepare,
        # Its batch costs about 15 statements and a commit whatever its size: at 2,000
        # records instead of 500 it handled 16-18 % more commands/s at 17 % less CPU
        # per command (benchmarks/bench_registration.py, docs/performance.md).
        batch_max_records=2_000,
        description="利用者登録・変更・ICカード更新: REG, CHG, RNW rules; events and NTF mails",
        emits=((Topics.REGISTRATION_EVENTS, events), (Topics.MAIL_REQUESTS, (MailRequested,))),
    )


def surety_consumer() -> ConsumerSpec:
    """電子保証 (SUR-1 … SUR-6): certificates checked against the case facts."""
    from pipelines import surety

    return ConsumerSpec("surety", surety.TOPICS, handlers=surety.HANDLERS,
                        description="電子保証: SUR-1 … SUR-6; certificates checked against "
                        "the case facts", emits=surety.EMITS)


def invoice_consumer() -> ConsumerSpec:
    """請求書 (INV-1 … INV-3): T-numbers, JP PINT, payment requests to the ERP."""
    from pipelines import invoices

    return ConsumerSpec("invoices", invoices.TOPICS, handlers=invoices.HANDLERS,
                        description="請求書: INV-1 登録番号, INV-2 JP PINT, INV-3 支払請求 to "
                        "the ERP", emits=invoices.EMITS)


def propagation_job(interval_s: float) -> ScheduledJob:
    """REG-9, CHG-3, RNW-8: apply what is due to the other entities (idempotent, resumable)."""
    from pipelines.registration.propagation import propagate

    def emit(session: Session, event: Payload, pending: Any) -> None:
        scheduled = pending.scheduled
        user_id = getattr(event, "user_id", None) or getattr(scheduled.source, "user_id", None)
        # A target's refusal comes with its mail to the ICカード利用部署 address (REG-9).
        topic = (Topics.MAIL_REQUESTS if event.message_type == "mail.requested"
                 else Topics.REGISTRATION_EVENTS)
        enqueue(session, topic, new_envelope(
            event, correlation_id=str(user_id or scheduled.propagation_id),
            procuring_entity=scheduled.target_entity, producer="hub.propagation"))

    async def run(engine: Engine) -> Any:
        import asyncio

        def once() -> Any:
            with Session(engine) as session:
                return propagate(session, utc_now(), emit=emit)

        return await asyncio.to_thread(once)

    return ScheduledJob("propagate", interval_s, run)


def connector_consumers(wiring: Wiring) -> dict[str, Any]:
    """Every installed connector plugin (hub/plugins.py), each with its own group.
    Returns the connectors by consumer name (the contract process shares CloudSign's store)."""
    from connectors.mail import MailConnector
    from hub.plugins import ConnectorRegistry

    registry = ConnectorRegistry.discover()
    wiring.plugins = registry
    connectors: dict[str, Any] = {}
    for running in registry.start(builders={"mail": lambda settings: MailConnector(
            settings, documents=wiring.mail_documents())}):
        connectors[running.plugin.consumer_name] = running.connector
        wiring.consumers.append(running.spec)
        wiring.closers.append(running.close)
    wiring.connectors.update(connectors)
    return connectors


class EntityConfigError(ValueError):
    """An entity's connectors are configured incompletely: the hub does not start."""


def entity_consumers(wiring: Wiring, settings: Settings) -> None:
    """With ``entities`` configured, each procuring entity's ERP commands and mails go to
    its own ERP and mail sender only (connectors/_shared/entities.py); a message of an
    entity without one is dead-lettered, naming it. A kind of connector configured for
    some entities must be configured for all of them: otherwise the start stops, naming
    the entities without it. A kind configured for none stays the installation's one."""
    if not settings.entities:
        return
    from connectors._shared.entities import per_entity
    from connectors.erp import ErpConnector, ErpSettings
    from connectors.erp import effects as erp_effects
    from connectors.mail import MailConnector, MailSettings
    from connectors.mail import effects as mail_effects

    def erp(entity: Any) -> Any:
        return ErpConnector(ErpSettings(url=entity.erp.url, username=entity.erp.username,
                                        password=entity.erp.password))

    def mail(entity: Any) -> Any:
        m = entity.mail
        return MailConnector(MailSettings().model_copy(update={
            "host": m.host, "port": m.port, "security": m.security, "username": m.username,
            "password": m.password, "from_address": m.from_address, "from_name": m.from_name}))

    kinds = (("erp", "connector.erp", erp, erp_effects),
             ("mail", "connector.mail", mail, mail_effects))
    problems = []
    for kind, _, _, _ in kinds:
        have = {code for code, e in settings.entities.items() if getattr(e, kind) is not None}
        if have and have != set(settings.entities):
            problems.append(f"{kind} missing for " + ", ".join(sorted(set(settings.entities)
                                                                      - have)))
    if problems:
        raise EntityConfigError(
            "entities' connectors incomplete: " + "; ".join(problems) + " (configure "
            "[entities.<code>.<connector>] for each entity, or for none)")
    for kind, consumer, make, module in kinds:
        if all(getattr(e, kind) is None for e in settings.entities.values()):
            continue
        by_entity = {}
        for code, entity in sorted(settings.entities.items()):
            connector = make(entity)
            by_entity[code] = module.effects(connector)
            if hasattr(connector, "aclose"):
                wiring.closers.append(connector.aclose)
        for n, spec in enumerate(wiring.consumers):
            if spec.name == consumer:
                wiring.consumers[n] = dataclasses.replace(
                    spec, handlers=per_entity(kind, by_entity),
                    description=spec.description + f"; each procuring entity's own {kind}")
        log.info("%s: one per procuring entity: %s", kind, ", ".join(sorted(by_entity)))


def case_pipelines(wiring: Wiring, cloudsign: Any, settings: Settings) -> None:
    """Surety (SUR), invoices (INV) and the contract conclusion process (CON).

    The city's own signer: the token ``HUB_CITYSIGNER_*`` configures, else the local
    SoftHSM2 token (:func:`city_signer`); without SoftHSM2, card cases wait in city-agreed.
    """
    from hub.contract import wiring as contract
    from hub.contract.review_api import review_router
    from hub.documents.routes import download_router

    wiring.consumers.append(surety_consumer())
    wiring.consumers.append(invoice_consumer())
    from pipelines.contract.handlers import use_policy

    use_policy(contract.policy_from_settings(settings))
    wiring.consumers.extend(contract.consumers(cloudsign_store=cloudsign.store))
    signer = city_signer()
    if signer is not None:
        wiring.consumers.append(contract.city_signer_consumer(wiring.engine, signer,
                                                              wiring.documents()))
    wiring.jobs.extend(contract.jobs(interval_s=settings.contract.job_interval_s))
    wiring.routers.append(review_router(wiring.engine))
    wiring.routers.append(download_router(wiring.documents(), wiring.links()))


def city_signer(run_dir: Path | None = None) -> Any:
    """The city's signer (CON-2): the token ``HUB_CITYSIGNER_*`` names when its PIN is set;
    else the embedded default, a SoftHSM2 token under ``RUN_DIR/softhsm`` holding a key
    issued by the test PKI (never in production); ``None`` without SoftHSM2."""
    from connectors.citysigner import CitySigner, CitySignerSettings
    from connectors.citysigner.localtoken import (
        INSTALL_HINT,
        SoftHsmMissingError,
        ensure_city_token,
    )
    from connectors.tsa import TsaConnector, TsaSettings
    from connectors.tsa.connector import HubTimeStamper
    from devkit.pki import ensure_pki

    tsa = TsaSettings()
    settings = CitySignerSettings()
    if settings.pin.get_secret_value():
        return CitySigner(settings, HubTimeStamper(TsaConnector(tsa, tsa.load_trust_roots())))
    run_dir = run_dir or RUN_DIR
    pki = ensure_pki(run_dir / "pki")
    try:
        local = ensure_city_token(run_dir, pki)
    except SoftHsmMissingError:
        log.warning("contract: no HUB_CITYSIGNER_PIN and no SoftHSM2 (%s); the city's "
                    "signing step is not run", INSTALL_HINT)
        return None
    log.warning("contract: no HUB_CITYSIGNER_PIN; the city signs with the local SoftHSM2 "
                "token in %s (test PKI, never in production)", local.directory)
    stamper = HubTimeStamper(TsaConnector(tsa, tsa.load_trust_roots() or pki.trust_roots))
    return CitySigner(local.settings, stamper, trust_roots=pki.trust_roots)


def webhook_routers(wiring: Wiring) -> None:
    """Inbound webhooks: the online application system and CloudSign."""
    from connectors.application.inbound import webhook_router as application_hook
    from connectors.application.mapping import message_id_for
    from connectors.application.settings import ApplicationSettings
    from hub.contract.cloudsign_hook import cloudsign_webhook
    from schemas.application import ApplicationSubmitted

    publisher = wiring.publisher
    assert publisher is not None

    async def on_submitted(application_id: str) -> None:
        await publisher.publish(Topics.APPLICATION_COMMANDS, new_envelope(
            ApplicationSubmitted(application_id=application_id), correlation_id=application_id,
            procuring_entity="online-application", producer="hub.webhook",
            message_id=message_id_for(application_id)))

    wiring.routers.append(application_hook(ApplicationSettings(), on_submitted))
    wiring.routers.append(cloudsign_webhook(wiring.engine, publisher.publish))


def gateway(wiring: Wiring) -> Any:
    """The card agents' gateway (returns its GatewayConfig). Without HUB_GATEWAY_CARD_ROOTS
    the embedded default trusts the project's test PKI (never in production)."""
    from hub.gateway import OUTCOME_CONSUMER, GatewaySettings, build_router, gateway_config
    from hub.gateway.pages import build_pages_router

    settings = GatewaySettings()
    if not settings.card_roots:
        from devkit.pki import ensure_pki

        pki = ensure_pki(RUN_DIR / "pki")
        settings = GatewaySettings(card_roots=(pki.root.cert_path, pki.other_root.cert_path),
                                   signature_roots=(pki.root.cert_path, pki.other_root.cert_path,
                                                    pki.tsa.cert_path))
        log.warning("gateway: no HUB_GATEWAY_CARD_ROOTS; trusting the test PKI in %s",
                    pki.directory)
    from hub.contract.jobs import accept_contractor_signature

    config = gateway_config(wiring.engine, settings, on_signed=accept_contractor_signature)
    wiring.routers.append(build_router(config))
    wiring.routers.append(build_pages_router(settings.agent_url))
    wiring.consumers.append(OUTCOME_CONSUMER)
    return config


def staff_routers(wiring: Wiring, settings: Settings, signature_roots: tuple[Any, ...]) -> None:
    """The contract archive and the city's steps (CON-6, CON-7) and the staff's identity
    routes (log-in, audit trail), for the staff only (hub/identity.py, docs/identity.md).
    Signatures are re-validated against the gateway's signature roots and the city
    signer's (``HUB_CITYSIGNER_TRUST_ROOTS``)."""
    from connectors.citysigner import CitySignerSettings
    from connectors.citysigner.signer import load_pem_files
    from hub.contract.archive_api import archive_router
    from hub.identity import staff_identity
    from hub.staff_api import staff_router

    roots = tuple(signature_roots) + load_pem_files(CitySignerSettings().trust_roots)
    identity = staff_identity(settings.staff, RUN_DIR)
    log.info("staff: %r", identity)
    wiring.routers.append(archive_router(wiring.engine, roots, identity=identity))
    wiring.routers.append(staff_router(wiring.engine, identity))


def default_wiring(settings: Settings) -> Wiring:
    """Every pipeline and connector of the hub."""
    engine = create_db_engine(settings.database_url.get_secret_value())
    wiring = Wiring(engine=engine, publisher=OutboxPublisher(engine), settings=settings)
    wiring.consumers.append(registration_consumer())
    interval = float(os.environ.get("HUB_PROPAGATION_INTERVAL_S", timedelta(minutes=5).seconds))
    wiring.jobs.append(propagation_job(interval))
    connectors = connector_consumers(wiring)
    entity_consumers(wiring, settings)
    case_pipelines(wiring, connectors["connector.cloudsign"], settings)
    webhook_routers(wiring)
    staff_routers(wiring, settings, gateway(wiring).signature_roots)
    wiring.jobs.append(edge_purge(settings))
    return wiring


def edge_purge(settings: Settings) -> ScheduledJob:
    """Expired gateway challenges, card sessions and review links (hub/gateway/purge.py)."""
    from hub.gateway.purge import purge_job

    return purge_job(settings.http.purge_interval_s,
                     timedelta(days=settings.http.keep_expired_links_days))


def load_wiring(ref: str | None, settings: Settings) -> Wiring:
    if not ref:
        return default_wiring(settings)
    module_name, _, attr = ref.partition(":")
    factory: Callable[[Settings], Wiring] = getattr(importlib.import_module(module_name),
                                                    attr or "wiring")
    return factory(settings)
