"""The contract process's scheduled work: timeouts and the steps outside the broker.

- :func:`expire_review_links` (CON-3): a review link past its expiry gets a
  :class:`ReviewLinkExpiryReached` command, so the process marks it expired and says so.
- :func:`collect_contractor_signatures` (CON-2, CON-5): a gateway signing job the gateway
  has validated becomes :class:`ContractorSignatureAccepted`, the signed PDF archived.
- :func:`sign_for_city` (CON-2, CON-7): a case the city agreed to is signed by the city's
  own signer (PAdES B-LT) and becomes :class:`CitySignatureApplied`; the signed PDF is
  archived and put where the mail connector attaches or links it (CON-4).

Each writes its command through the transactional outbox with a message id derived from
the case and step, so a job that runs twice (two hub processes, a crash between the
write and the next run) yields one effect: the process manager drops the repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors._shared.errors import PeerInMaintenance
from connectors._shared.files import contained, write_private
from hub.gateway.models import SigningJobRow
from hub.outbox import enqueue
from pipelines.contract.mails import mail_document_ref
from pipelines.contract.models import CaseRow
from pipelines.contract.state import CaseState
from pipelines.contract.store import get_document, put_document
from schemas.contract import (
    CitySignatureApplied,
    ContractorSignatureAccepted,
    ContractStatus,
    ReviewLinkExpiryReached,
)
from schemas.envelope import new_envelope, utc_now
from schemas.ids import keyed_uuid
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = [
    "PRODUCER",
    "CitySigning",
    "collect_contractor_signatures",
    "expire_review_links",
    "sign_for_city",
]

log = logging.getLogger(__name__)

PRODUCER = "hub.contract.jobs"


class CitySigning(Protocol):
    """What :func:`sign_for_city` needs of connectors.citysigner.CitySigner."""

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
        CaseRow.signing_job_id == SigningJobRow.id, SigningJobRow.status == "signed",
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


_signed_by: WeakKeyDictionary[CitySigning, dict[str, str]] = WeakKeyDictionary()
"""Per signer: the cases this process signed and whose CitySignatureApplied is queued
(case id -> sha256 of the contractor-signed PDF it signed). Until the process manager
takes that command, the case stays city-agreed; signing it again on every run would only
make a signature the process drops as a repeat (same message id), at ~0.1 s CPU each."""


async def sign_for_city(engine: Engine, signer: CitySigning, mail_dir: Path,
                        clock: Callable[[], datetime] = utc_now) -> int:
    """CON-2: sign every case the city agreed to with the city's signer (B-LT)."""
    queued = _signed_by.setdefault(signer, {})
    with Session(engine) as session:
        agreed = [s for s in _cases(session, ContractStatus.CITY_AGREED) if s.contractor_signed]
        for case_id in queued.keys() - {s.case_id for s in agreed}:
            del queued[case_id]  # the process has taken it: nothing to remember
        todo = [(s, get_document(session, s.contractor_signed)) for s in agreed
                if s.contractor_signed and queued.get(s.case_id) != s.contractor_signed.sha256]
    signed = 0
    for state, pdf in todo:
        try:
            result = await signer.sign(pdf)
        except PeerInMaintenance as exc:  # WIN-3: held, not failed; every case needs the TSA
            log.info("city signing held until %s: %s", exc.until.isoformat(), exc)
            break
        except Exception:  # one case's failure must not hold the others back
            log.exception("city signing of case %s failed; tried again next run", state.case_id)
            continue
        name = f"{state.case_id}.pdf"
        with Session(engine) as session, session.begin():
            ref = put_document(session, name, result.pdf, clock())
            # The case id is a safe name already (schemas.ids.CaseId); contained() is the
            # second line: the PDF goes inside the mail directory or nowhere.
            target = contained(mail_dir, mail_document_ref(ref))
            await asyncio.to_thread(write_private, target, result.pdf)
            _command(session, state, CitySignatureApplied(
                case_id=state.case_id, document=ref, signer_subject=result.signer_subject[:300],
                signed_at=result.signed_at), "city-signed", clock())
        assert state.contractor_signed is not None  # filtered above
        queued[state.case_id] = state.contractor_signed.sha256
        signed += 1
    return signed


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; the hub stores UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
