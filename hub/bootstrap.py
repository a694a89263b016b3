"""Wiring: which consumers, scheduled jobs and HTTP routers ``hub run`` starts.

The default wiring runs every pipeline and connector of the project against the
settings' database and the connectors' own settings (``HUB_MAIL_*``, ``HUB_ERP_*``,
...), whose defaults are the reference peers on loopback. ``hub run --bootstrap
module:function`` swaps it for another wiring (an integrator's own, or the tests').

This is the composition root: the pipelines' handlers are built here from what they
depend on (the registration policy book, the contract policy, the card gateway's signing
jobs, CloudSign's store), as the connectors are; no pipeline reads a setting itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
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
    from pipelines.registration.policy import PolicyBook

__all__ = [
    "EntityConfigError",
    "Wiring",
    "check_entities",
    "city_signer",
    "default_wiring",
    "entity_consumers",
    "entity_signers",
    "invoice_consumer",
    "load_wiring",
    "policy_book",
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


def policy_book(settings: Settings) -> PolicyBook:
    """The registration policy (REG, CHG, RNW, WIN): the file ``HUB_REGISTRATION_POLICY``
    names, else the packaged default."""
    from pipelines.registration.policy import default_policy_book, load_policy_book

    path = settings.registration_policy
    return load_policy_book(path) if path else default_policy_book()


def registration_consumer(book: PolicyBook | None = None) -> ConsumerSpec:
    """The central pipeline of REG/CHG/RNW (利用者登録・変更・ICカード更新), deciding with
    ``book`` (the packaged default policy if not given)."""
    from pipelines.registration.handlers import MESSAGE_TYPES, RegistrationHandlers
    from pipelines.registration.policy import default_policy_book
    from schemas import registration
    from schemas.mail import MailRequested

    events = tuple(v for v in vars(registration).values()
                   if isinstance(v, type) and issubclass(v, Payload) and v is not Payload
                   and v.__module__ == registration.__name__
                   and v not in MESSAGE_TYPES)
    pipeline = RegistrationHandlers(book or default_policy_book())
    return ConsumerSpec(
        "registration",
        (Topics.REGISTRATION_COMMANDS, Topics.QUALIFICATION_UPDATES),
        handlers=pipeline.handlers,
        prepare=pipeline.prepare,
        # Its batch costs about 15 statements and a commit whatever its size, so larger
        # batches spread that over more commands (docs/performance.md).
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


def propagation_job(interval_s: float, book: PolicyBook | None = None) -> ScheduledJob:
    """REG-9, CHG-3, RNW-8: apply what is due to the other entities (idempotent, resumable),
    each target asked again under ``book`` (the packaged default policy if not given)."""
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
                return propagate(session, utc_now(), emit=emit, book=book)

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


ENTITY_CONNECTORS = ("erp", "mail", "signer", "cloudsign", "dsure")
"""The kinds of connector a procuring entity may have of its own (``[entities.<code>.<kind>]``)."""


def check_entities(settings: Settings) -> None:
    """A kind of connector configured for some entities must be configured for all of them
    (:class:`EntityConfigError` names the entities without it)."""
    problems = []
    for kind in ENTITY_CONNECTORS:
        have = {code for code, e in settings.entities.items() if getattr(e, kind) is not None}
        if have and have != set(settings.entities):
            problems.append(f"{kind} missing for " + ", ".join(sorted(set(settings.entities)
                                                                      - have)))
    if problems:
        raise EntityConfigError(
            "entities' connectors incomplete: " + "; ".join(problems) + " (configure "
            "[entities.<code>.<connector>] for each entity, or for none)")


def entity_consumers(wiring: Wiring, settings: Settings) -> None:
    """With ``entities`` configured, each procuring entity's ERP commands, mails, CloudSign
    contracts and D・Sure lookups go to its own peer only (connectors/_shared/entities.py);
    a message of an entity without one is dead-lettered naming it (IAM-4). A kind of
    connector configured for some entities must be configured for all of them: otherwise
    the start stops, naming the entities without it. A kind configured for none stays the
    installation's one. Each entity's connector is watched as ``<consumer>@<entity>``
    (``/readyz``, metrics) instead of the installation's. The city signers are chosen in
    :func:`case_pipelines`."""
    if not settings.entities:
        return
    check_entities(settings)
    from connectors._shared.entities import per_entity
    from connectors.cloudsign import effects as cloudsign_effects
    from connectors.cloudsign.connector import CloudSignConnector
    from connectors.cloudsign.settings import CloudSignSettings
    from connectors.dsure import effects as dsure_effects
    from connectors.dsure.connector import DSureConnector
    from connectors.dsure.settings import DSureSettings
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
            "password": m.password, "from_address": m.from_address, "from_name": m.from_name,
            "reply_to": m.reply_to}),
            documents=wiring.mail_documents())

    def cloudsign(entity: Any) -> Any:
        # One document store for all: the contract process reads the signed PDFs from it.
        shared = wiring.connectors.get("connector.cloudsign")
        return CloudSignConnector(CloudSignSettings().model_copy(update={
            "base_url": entity.cloudsign.base_url, "client_id": entity.cloudsign.client_id}),
            store=getattr(shared, "store", None))

    def dsure(entity: Any) -> Any:
        return DSureConnector(DSureSettings().model_copy(update={
            "base_url": entity.dsure.base_url, "api_token": entity.dsure.api_token}))

    kinds = (("erp", "connector.erp", erp, erp_effects),
             ("mail", "connector.mail", mail, mail_effects),
             ("cloudsign", "connector.cloudsign", cloudsign, cloudsign_effects),
             ("dsure", "connector.dsure", dsure, dsure_effects))
    for kind, consumer, make, module in kinds:
        if all(getattr(e, kind) is None for e in settings.entities.values()):
            continue
        by_entity, built = {}, {}
        for code, entity in sorted(settings.entities.items()):
            connector = make(entity)
            by_entity[code] = module.effects(connector)
            built[f"{consumer}@{code}"] = connector
            if hasattr(connector, "aclose"):
                wiring.closers.append(connector.aclose)
        # /readyz and the metrics show each entity's own connector, not the unused default
        wiring.connectors.pop(consumer, None)
        wiring.connectors.update(built)
        for n, spec in enumerate(wiring.consumers):
            if spec.name == consumer:
                wiring.consumers[n] = dataclasses.replace(
                    spec, handlers=per_entity(kind, by_entity),
                    description=spec.description + f"; each procuring entity's own {kind}")
        log.info("%s: one per procuring entity: %s", kind, ", ".join(sorted(by_entity)))


def entity_signers(settings: Settings) -> dict[str, Any]:
    """Each procuring entity's own city signer (``[entities.<code>.signer]``), by entity
    code; empty when no entity has one (the installation's :func:`city_signer` signs)."""
    if not any(e.signer is not None for e in settings.entities.values()):
        return {}
    check_entities(settings)
    from connectors.citysigner import CitySigner, CitySignerSettings
    from connectors.tsa import TsaConnector, TsaSettings
    from connectors.tsa.connector import HubTimeStamper

    tsa = TsaSettings()
    roots = tsa.load_trust_roots()
    if not roots:  # as the embedded default's signer: the test PKI's TSA (never in production)
        from devkit.pki import ensure_pki

        roots = ensure_pki(RUN_DIR / "pki").trust_roots
        log.warning("city signers: no HUB_TSA_TRUST_ROOTS; trusting the test PKI's TSA")
    stamper = HubTimeStamper(TsaConnector(tsa, roots))
    signers: dict[str, Any] = {}
    for code, entity in sorted(settings.entities.items()):
        s = entity.signer
        assert s is not None  # check_entities: all or none
        signers[code] = CitySigner(CitySignerSettings(
            module=s.module, token_label=s.token_label, key_label=s.key_label, pin=s.pin,
            chain=s.chain, trust_roots=s.trust_roots, reason=s.reason), stamper)
    log.info("city signer: one per procuring entity: %s", ", ".join(signers))
    return signers


def case_pipelines(wiring: Wiring, cloudsign: Any, settings: Settings,
                   book: PolicyBook | None = None) -> None:
    """Surety (SUR), invoices (INV) and the contract conclusion process (CON); ``book``:
    the registration policy, whose e-contract maintenance windows hold the city's signing.

    The city's own signer: each entity's own (:func:`entity_signers`) when entities have
    one; else the token ``HUB_CITYSIGNER_*`` configures, else the local SoftHSM2 token
    (:func:`city_signer`); without SoftHSM2, card cases wait in city-agreed.
    """
    from hub.contract import wiring as contract
    from hub.contract.review_api import review_router
    from hub.documents.routes import download_router

    wiring.consumers.append(surety_consumer())
    wiring.consumers.append(invoice_consumer())
    policy = contract.policy_from_settings(settings)
    wiring.consumers.extend(contract.consumers(policy=policy, cloudsign_store=cloudsign.store))
    signer: Any = entity_signers(settings) or city_signer()
    if signer:
        wiring.consumers.append(contract.city_signer_consumer(wiring.engine, signer,
                                                              wiring.documents(), book=book))
    wiring.jobs.extend(contract.jobs(interval_s=settings.contract.job_interval_s))
    wiring.routers.append(review_router(wiring.engine, policy=policy))
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


def gateway(wiring: Wiring, book: PolicyBook | None = None) -> Any:
    """The card agents' gateway (returns its GatewayConfig), judging log-ins and signing
    windows by ``book``. Without HUB_GATEWAY_CARD_ROOTS the embedded default trusts the
    project's test PKI (never in production)."""
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

    config = gateway_config(wiring.engine, settings, on_signed=accept_contractor_signature,
                            book=book)
    wiring.routers.append(build_router(config))
    wiring.routers.append(build_pages_router(settings.agent_url))
    wiring.consumers.append(OUTCOME_CONSUMER)
    return config


def staff_routers(wiring: Wiring, settings: Settings, signature_roots: tuple[Any, ...]) -> None:
    """The contract archive and the city's steps (CON-6, CON-7), the staff's identity
    routes (log-in, audit trail, registrations, dead letters) and the staff console
    (``/console``), for the staff only (hub/identity.py, docs/identity.md, docs/console.md).
    Signatures are re-validated against the gateway's signature roots and the city
    signer's (``HUB_CITYSIGNER_TRUST_ROOTS``)."""
    from connectors.citysigner import CitySignerSettings
    from connectors.citysigner.signer import load_pem_files
    from hub.console import ConsoleConfig, console_router
    from hub.contract.archive_api import ArchiveService, archive_router
    from hub.contract.wiring import policy_from_settings
    from hub.identity import staff_identity
    from hub.staff_api import staff_router
    from hub.staff_queries import KafkaDeadLetters

    roots = tuple(signature_roots) + load_pem_files(CitySignerSettings().trust_roots)
    for entity in settings.entities.values():  # each entity's own signer's roots too
        if entity.signer is not None:
            roots += load_pem_files(entity.signer.trust_roots)
    identity = staff_identity(settings.staff, RUN_DIR)
    log.info("staff: %r", identity)
    archive = ArchiveService(wiring.engine, roots, policy=policy_from_settings(settings))
    wiring.routers.append(archive_router(wiring.engine, roots, identity=identity,
                                         service=archive))
    wiring.routers.append(staff_router(wiring.engine, identity,
                                       dead_letters=KafkaDeadLetters(settings)))
    # The staff console's pages call the same archive service (hub/console).
    wiring.routers.append(console_router(wiring.engine, identity, archive, ConsoleConfig(
        run_dir=RUN_DIR, secure=settings.http.tls, public_base=settings.public_base(),
        kafka=settings,
        oidc_client_id=settings.staff.oidc.client_id if settings.staff.oidc else "hub-staff")))


def default_wiring(settings: Settings) -> Wiring:
    """Every pipeline and connector of the hub."""
    engine = create_db_engine(settings.database_url.get_secret_value())
    wiring = Wiring(engine=engine, publisher=OutboxPublisher(engine), settings=settings)
    book = policy_book(settings)
    wiring.consumers.append(registration_consumer(book))
    wiring.jobs.append(propagation_job(settings.propagation_interval_s, book))
    connectors = connector_consumers(wiring)
    entity_consumers(wiring, settings)
    case_pipelines(wiring, connectors["connector.cloudsign"], settings, book)
    webhook_routers(wiring)
    staff_routers(wiring, settings, gateway(wiring, book).signature_roots)
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
