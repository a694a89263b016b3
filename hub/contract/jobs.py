"""The contract process's scheduled work: timeouts and the steps outside the broker.

- :func:`expire_review_links` (CON-3): a review link past its expiry gets a
  :class:`ReviewLinkExpiryReached` command, so the process marks it expired and says so.
- :func:`collect_contractor_signatures` (CON-2, CON-5): a gateway signing job the gateway
  has validated becomes :class:`ContractorSignatureAccepted`, the signed PDF archived.
  The gateway calls :func:`accept_contractor_signature` in the transaction that accepts
  the signed PDF, so this job only finds accepted jobs no such hook handed over (a
  gateway wired without it).
- :func:`city_signer_consumer` (CON-2, CON-7): not a job but a consumer of the process's
  events: a case the city agreed to is signed by the city's own signer (PAdES B-LT) and
  becomes :class:`CitySignatureApplied`; the signed PDF goes to the shared document
  store, where the mail connector attaches or links it (CON-4).

The jobs run in the process holding their lease (hub/leases.py). Each writes its command
through the transactional outbox with a message id derived from the case and step, so a
job that runs twice (a lease taken over from a stalled holder, a crash between the write
and the next run) yields one effect: the process manager drops the repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors._shared.entities import EntityNotConfiguredError
from connectors._shared.errors import PeerInMaintenance
from hub.consumers import ConsumerSpec, EffectContext
from hub.contract.models import CitySignatureRow
from hub.documents.store import SqlDocumentStore
from hub.gateway.models import SigningJobRow, SigningJobStatus
from hub.outbox import enqueue
from pipelines.contract.models import CaseRow
from pipelines.contract.state import CaseState
from pipelines.contract.store import DOC_SCHEME, get_document, load_case, put_document
from pipelines.registration.policy import (
    MaintenanceWindow,
    PolicyBook,
    WindowStop,
    default_policy_book,
)
from schemas.contract import (
    CitySignatureApplied,
    ContractorSignatureAccepted,
    ContractStatus,
    ContractStepRecorded,
    DocumentRef,
    ReviewLinkExpiryReached,
)
from schemas.envelope import Envelope, new_envelope, utc_now
from schemas.ids import keyed_uuid
from schemas.registration import SystemKind
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = [
    "CITY_SIGNER_CONSUMER",
    "PRODUCER",
    "CitySigning",
    "accept_contractor_signature",
    "city_signer_consumer",
    "collect_contractor_signatures",
    "expire_review_links",
]

log = logging.getLogger(__name__)

PRODUCER = "hub.contract.jobs"


class CitySigning(Protocol):
    """What :func:`city_signer_consumer` needs of connectors.citysigner.CitySigner."""

    async def sign(self, pdf: bytes, *, field_name: str = ...) -> Any: ...


def _cases(session: Session, status: ContractStatus) -> list[CaseState]:
    rows = session.exec(select(CaseRow).where(CaseRow.status == status.value))
    return [CaseState.model_validate(row.state) for row in rows]


def _command(session: Session, state: CaseState, payload: Payload, step: str,
             now: datetime) -> None:
    enqueue(session, Topics.CONTRACT_COMMANDS, new_envelope(
        payload, correlation_id=state.case_id, procuring_entity=state.procuring_entity,
        producer=PRODUCER, occurred_at=now,
        message_id=keyed_uuid("contract-job", f"{state.case_id}:{step}")))


def expire_review_links(session: Session, now: datetime) -> int:
    """CON-3: ask the process to expire every review link past its time."""
    due = 0
    for state in _cases(session, ContractStatus.REVIEW):
        link = state.link
        if link is not None and not link.expired and link.expires_at <= now:
            _command(session, state, ReviewLinkExpiryReached(
                case_id=state.case_id, link_id=link.link_id), f"expire:{link.link_id}", now)
            due += 1
    return due


def collect_contractor_signatures(session: Session, now: datetime) -> int:
    """CON-2: signing jobs the gateway accepted become the process's next step.

    One query finds the cases whose job is signed: the job runs every few seconds, and
    reading every waiting case's state and job (with both PDFs) each time cost the hub
    more than the signatures it collects."""
    done = 0
    found = session.exec(select(CaseRow, SigningJobRow).where(
        CaseRow.status == ContractStatus.CONTRACTOR_AGREED.value,
        CaseRow.signing_job_id == SigningJobRow.id, SigningJobRow.status == SigningJobStatus.SIGNED,
        SigningJobRow.signed_document.is_not(None)))  # type: ignore[union-attr]
    for row, job in found:
        state = CaseState.model_validate(row.state)
        if state.signing_job_id != job.id or job.signed_document is None:
            continue
        ref = put_document(session, f"{state.case_id}-contractor-signed.pdf",
                           job.signed_document, now)
        _command(session, state, ContractorSignatureAccepted(
            case_id=state.case_id, signing_job_id=job.id, document=ref,
            signer_issuer=job.signer_issuer or "?", signer_serial=job.signer_serial or "?",
            signed_at=_aware(job.signed_at or now)), f"contractor-signed:{job.id}", now)
        done += 1
    return done


def accept_contractor_signature(session: Session, job: SigningJobRow, now: datetime) -> bool:
    """CON-2: the gateway accepted ``job``'s signed PDF; in that same transaction, the case
    waiting for it gets :class:`ContractorSignatureAccepted` (the step is event-driven: no
    poll stands between the contractor's signature and the city's agreement). False when
    the job is no contract case's (or not its current one); the periodic
    :func:`collect_contractor_signatures` finds what this did not."""
    row = session.exec(select(CaseRow).where(
        CaseRow.signing_job_id == job.id,
        CaseRow.status == ContractStatus.CONTRACTOR_AGREED.value)).first()
    if row is None or job.signed_document is None:
        return False
    state = CaseState.model_validate(row.state)
    if state.signing_job_id != job.id:
        return False
    ref = put_document(session, f"{state.case_id}-contractor-signed.pdf", job.signed_document,
                       now)
    _command(session, state, ContractorSignatureAccepted(
        case_id=state.case_id, signing_job_id=job.id, document=ref,
        signer_issuer=job.signer_issuer or "?", signer_serial=job.signer_serial or "?",
        signed_at=_aware(job.signed_at or now)), f"contractor-signed:{job.id}", now)
    return True


CITY_SIGNER_CONSUMER = "contract.city-signer"


@dataclass(frozen=True)
class _ToSign:
    state: CaseState
    contractor: DocumentRef
    pdf: bytes | None
    """None when the case was signed already (``done``)."""
    done: CitySignatureRow | None


def _to_sign(engine: Engine, case_id: str) -> _ToSign | None:
    with Session(engine) as session:
        state = load_case(session, case_id)
        if state is None or state.status is not ContractStatus.CITY_AGREED \
                or state.contractor_signed is None:
            return None  # a late or repeated request: the case has moved on
        contractor = state.contractor_signed
        done = session.get(CitySignatureRow, (case_id, contractor.sha256))
        if done is not None:
            return _ToSign(state, contractor, None, done)
        return _ToSign(state, contractor, get_document(session, contractor), None)


def _record(engine: Engine, store: SqlDocumentStore, found: _ToSign,
            result: Any) -> CitySignatureRow:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        doc = store.put_in(session, result.pdf, filename=f"{found.state.case_id}.pdf")
        row = CitySignatureRow(case_id=found.state.case_id,
                               contractor_sha256=found.contractor.sha256,
                               signed_sha256=doc.key, filename=doc.filename,
                               size_bytes=doc.size, signer_subject=result.signer_subject[:300],
                               signed_at=_aware(result.signed_at))
        session.add(row)
        return row


def signing_window(entity: str, at: datetime,
                       book: PolicyBook | None = None) -> MaintenanceWindow | None:
    """WIN-2: the entity's announced e-contract maintenance window that stops signing at
    ``at`` (the policy book's ``maintenance``), if any."""
    policy = (book or default_policy_book()).get(entity, SystemKind.E_CONTRACT)
    return None if policy is None else policy.maintenance_at(at, WindowStop.SIGNING)


def city_signer_consumer(engine: Engine, signer: CitySigning | Mapping[str, CitySigning],
                         store: SqlDocumentStore | None = None, *,
                         clock: Callable[[], datetime] = utc_now,
                         book: PolicyBook | None = None) -> ConsumerSpec:
    """CON-2, CON-7: the city's signature as a consumer of the process's events.

    When a case reaches city-agreed (``ContractStepRecorded``), the city's signer signs
    the contractor-signed PDF (PAdES B-LT, with the TSA), keeps it in the document store
    and asks the process to conclude (:class:`CitySignatureApplied`). Partitioned by case
    like every consumer, so one process signs a case; the signature is recorded with the
    signed PDF before the command is emitted, so a request redelivered after a crash
    reuses it instead of signing and timestamping again. The signer's maintenance window
    (WIN-3) holds the request; a failure is retried with backoff, then dead-lettered.

    ``signer`` by procuring entity: each case is signed with its own entity's key only; a
    case of an entity with none is dead-lettered at once naming it (IAM-4), never signed
    with another entity's key."""
    docs = store or SqlDocumentStore(engine)

    async def sign(ctx: EffectContext, envelope: Envelope[Any]) -> None:
        step: ContractStepRecorded = envelope.payload
        if step.status is not ContractStatus.CITY_AGREED:
            return
        found = await asyncio.to_thread(_to_sign, engine, step.case_id)
        if found is None:
            return
        window = signing_window(found.state.procuring_entity, clock(), book)
        if window is not None and found.done is None:  # WIN-2: held until the window ends
            raise PeerInMaintenance("city-signer", window.end, "announced e-contract "
                                    "maintenance (WIN-2)")
        done = found.done
        if done is None:
            assert found.pdf is not None
            entity = found.state.procuring_entity
            chosen = signer.get(entity) if isinstance(signer, Mapping) else signer
            if chosen is None:
                raise EntityNotConfiguredError("signer", entity)
            try:
                result = await chosen.sign(found.pdf)
            except PeerInMaintenance as exc:  # WIN-3: held until the window ends, not failed
                log.info("city signing held until %s: %s", exc.until.isoformat(), exc)
                raise
            done = await asyncio.to_thread(_record, engine, docs, found, result)
        ref = DocumentRef(uri=f"{DOC_SCHEME}{done.signed_sha256}", filename=done.filename,
                          size_bytes=done.size_bytes, sha256=done.signed_sha256)
        ctx.emit(Topics.CONTRACT_COMMANDS, CitySignatureApplied(
            case_id=step.case_id, document=ref, signer_subject=done.signer_subject,
            signed_at=_aware(done.signed_at)), cause=envelope, correlation_id=step.case_id)

    return ConsumerSpec(
        CITY_SIGNER_CONSUMER, (Topics.CONTRACT_EVENTS,),
        handlers={ContractStepRecorded: sign},
        description="発注者の電子署名: the city's PAdES B-LT signature of each city-agreed "
                    "case (CON-2, CON-7)",
        emits=((Topics.CONTRACT_COMMANDS, (CitySignatureApplied,)),))


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; the hub stores UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
