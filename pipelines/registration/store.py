"""The registration state in the database: load the slice of :class:`World` a command
needs, and write back what the events changed (``models.py`` tables).

The evolution itself is :func:`pipelines.registration.world.apply`; this module only
maps rows to and from it, so the database and the in-memory World cannot drift apart.
Qualification rows are written by :func:`upsert_qualification` (QualificationUpdated,
CSV import). Password verifiers are salted scrypt (RFC 7914); passwords are never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from pipelines.registration.models import (
    CardRegistrationRow,
    CardRow,
    ContractorRow,
    PendingConfirmationRow,
    PendingPropagationRow,
    QualificationRow,
)
from pipelines.registration.world import (
    Card,
    CardKey,
    CardRegistration,
    Contractor,
    PendingConfirmation,
    PendingPropagation,
    PropagationStatus,
    RegistrationStatus,
    World,
)
from schemas import fast
from schemas.qualification import QualificationRecord
from schemas.registration import (
    CardFacts,
    CardRegistrationRequested,
    Contact,
    Domain,
    PropagationScheduled,
)
from schemas.text import trade_name_key

__all__ = [
    "RECORD_COLUMNS",
    "aware",
    "card_of",
    "check_password",
    "contact_of",
    "load_world",
    "make_password_verifier",
    "record_from",
    "record_of",
    "save_world",
    "upsert_qualification",
    "utc",
]

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; the hub stores UTC, so mark them UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def utc(at: datetime) -> datetime:
    """Stored times are UTC: SQLite keeps no zone, so a JST time would read back shifted."""
    return at.astimezone(UTC)


def make_password_verifier(password: str) -> str:
    """A salted scrypt verifier for ``password`` (the password itself is never kept)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, verifier: str | None) -> bool:
    """Whether ``password`` matches ``verifier`` (constant-time comparison)."""
    if not verifier or verifier.count("$") != 2:
        return False
    scheme, salt_b64, digest_b64 = verifier.split("$")
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32,
                            **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def record_of(row: Any) -> QualificationRecord:
    """A ``reg_qualification`` row (ORM object or Core row) as the rules see it.

    Not validated again: the row was written from a validated QualificationRecord.
    """
    return record_from(tuple(getattr(row, name) for name in RECORD_COLUMNS))


RECORD_COLUMNS = tuple(QualificationRecord.model_fields)
"""The ``reg_qualification`` columns a QualificationRecord is made of, in its field order."""


def record_from(values: Sequence[Any]) -> QualificationRecord:
    """:func:`record_of` for the values of :data:`RECORD_COLUMNS`, in that order.

    For a batch's look-up that selects just those columns: half the cost of a whole row.
    """
    fields = dict(zip(RECORD_COLUMNS, values, strict=True))
    changed = fields["password_changed_at"]
    if changed is not None:
        fields["password_changed_at"] = aware(changed)
    return fast.build(QualificationRecord, **fields)


def upsert_qualification(session: Session, entity: str, domain: Domain,
                         record: QualificationRecord, now: datetime, *,
                         password_verifier: str | None = None) -> None:
    """Add or replace one row of 資格審査情報 (the verifier is kept unless a new one is given)."""
    row = session.exec(select(QualificationRow).where(
        QualificationRow.entity == entity, QualificationRow.domain == domain.value,
        QualificationRow.user_id == record.user_id)).first()
    if row is None:
        row = QualificationRow(entity=entity, domain=domain.value, user_id=record.user_id,
                               trade_name="", trade_name_key="", head_office_address="",
                               representative_name="", contractor_name="", updated_at=utc(now))
    for name in ("trade_name", "postal_code", "head_office_address", "representative_name",
                 "representative_title", "contractor_name", "corporate_number",
                 "invoice_number", "qualified_until"):
        setattr(row, name, getattr(record, name))
    changed = record.password_changed_at
    row.password_changed_at = utc(changed) if changed else None
    row.trade_name_key = trade_name_key(record.trade_name)
    if password_verifier is not None:
        row.password_verifier = password_verifier
    row.updated_at = utc(now)
    session.add(row)


def contact_of(data: dict[str, Any]) -> Contact:
    """A stored contact (JSON column) as a Contact."""
    return Contact.model_validate_json(json.dumps(data))


def card_of(row: Any, regs: Iterable[Any]) -> Card:
    """A ``reg_card`` row and its ``reg_card_registration`` rows as a Card."""
    facts = CardFacts(
        issuer=row.issuer, serial=row.serial, holder_name=row.holder_name,
        holder_address=row.holder_address, holder_organization=row.holder_organization,
        not_before=aware(row.not_before), not_after=aware(row.not_after),
        authenticated_at=aware(row.authenticated_at) if row.authenticated_at else None)
    registrations = {
        (r.entity, Domain(r.domain)): CardRegistration(
            RegistrationStatus(r.status), r.department_name, contact_of(r.contact),
            aware(r.registered_at))
        for r in regs}
    return Card(row.network, row.user_id, facts, registrations)


def load_world(session: Session, *, network: str, entities: Iterable[str],
               user_ids: Iterable[str], card_keys: Iterable[CardKey] = (),
               company_keys: Iterable[str] = (), corporate_numbers: Iterable[str] = (),
               confirmation_ids: Iterable[str] = (),
               propagation_ids: Iterable[str] = ()) -> World:
    """The slice of state one decision needs (everything else stays in the database)."""
    users, keys = sorted(set(user_ids)), sorted(set(card_keys))
    world = World()
    for q in session.exec(select(QualificationRow).where(
            col(QualificationRow.user_id).in_(users),
            col(QualificationRow.entity).in_(sorted(set(entities))))):
        world.qualifications[(q.entity, Domain(q.domain), q.user_id)] = record_of(q)
    for c in session.exec(select(ContractorRow).where(
            ContractorRow.network == network,
            sa.or_(col(ContractorRow.user_id).in_(users),
                   col(ContractorRow.company_key).in_(sorted(set(company_keys))),
                   col(ContractorRow.corporate_number).in_(sorted(set(corporate_numbers)))))):
        world.contractors[(c.network, c.user_id)] = Contractor(
            c.network, c.user_id, c.company_id, c.company_name, c.company_key,
            c.corporate_number,
            contact_of(c.representative_contact) if c.representative_contact else None)
    card_filter = sa.and_(col(CardRow.network) == network, col(CardRow.user_id).in_(users))
    if keys:
        card_filter = sa.or_(card_filter, sa.tuple_(col(CardRow.issuer),
                                                    col(CardRow.serial)).in_(keys))
    cards = list(session.exec(select(CardRow).where(card_filter)))
    regs: dict[int, list[CardRegistrationRow]] = {}
    if cards:
        for r in session.exec(select(CardRegistrationRow).where(
                col(CardRegistrationRow.card_id).in_([c.id for c in cards]))):
            regs.setdefault(r.card_id, []).append(r)
    for card_row in cards:
        world.cards[(card_row.issuer, card_row.serial)] = card_of(card_row,
                                                               regs.get(card_row.id or 0, ()))
    for p in session.exec(select(PendingConfirmationRow).where(
            col(PendingConfirmationRow.confirmation_id).in_(sorted(set(confirmation_ids))))):
        command = CardRegistrationRequested.model_validate_json(json.dumps(p.command))
        world.confirmations[uuid.UUID(p.confirmation_id)] = PendingConfirmation(
            uuid.UUID(p.confirmation_id), command, aware(p.created_at))
    for pp in session.exec(select(PendingPropagationRow).where(
            col(PendingPropagationRow.propagation_id).in_(sorted(set(propagation_ids))))):
        world.propagations[uuid.UUID(pp.propagation_id)] = _pending(pp)
    return world


def _pending(row: PendingPropagationRow) -> PendingPropagation:
    scheduled = PropagationScheduled.model_validate_json(json.dumps(row.scheduled))
    return PendingPropagation(scheduled, PropagationStatus(row.status), row.note)


def save_world(session: Session, before: World, after: World, now: datetime) -> None:
    """Write what differs between ``before`` (as loaded) and ``after`` (events applied)."""
    for key, contractor in after.contractors.items():
        if before.contractors.get(key) != contractor:
            _save_contractor(session, contractor, now)
    for card_key, card in after.cards.items():
        if before.cards.get(card_key) != card:
            _save_card(session, card, now)
    for cid in before.confirmations.keys() - after.confirmations.keys():
        row = session.get(PendingConfirmationRow, str(cid))
        if row is not None:
            session.delete(row)
    for cid, pending in after.confirmations.items():
        if cid not in before.confirmations and session.get(PendingConfirmationRow,
                                                           str(cid)) is None:
            session.add(PendingConfirmationRow(
                confirmation_id=str(cid), issuer=pending.command.card.issuer,
                serial=pending.command.card.serial,
                command=pending.command.model_dump(mode="json"), created_at=utc(now)))
    for pid, prop in after.propagations.items():
        if before.propagations.get(pid) != prop:
            _save_propagation(session, prop, now)
    session.flush()


def _save_contractor(session: Session, c: Contractor, now: datetime) -> None:
    row = session.exec(select(ContractorRow).where(
        ContractorRow.network == c.network, ContractorRow.user_id == c.user_id)).first()
    rep = c.representative_contact.model_dump(mode="json") if c.representative_contact else None
    if row is None:
        row = ContractorRow(network=c.network, user_id=c.user_id, company_id=c.company_id,
                            company_name=c.company_name, company_key=c.company_key,
                            corporate_number=c.corporate_number, representative_contact=rep,
                            created_at=utc(now))
    else:
        row.company_name, row.company_key = c.company_name, c.company_key
        row.corporate_number, row.representative_contact = c.corporate_number, rep
    session.add(row)


def _save_card(session: Session, card: Card, now: datetime) -> None:
    f = card.facts
    row = session.exec(select(CardRow).where(CardRow.issuer == f.issuer,
                                             CardRow.serial == f.serial)).first()
    if row is None:
        row = CardRow(issuer=f.issuer, serial=f.serial, network=card.network,
                      user_id=card.user_id, holder_name=f.holder_name,
                      holder_address=f.holder_address, not_before=utc(f.not_before),
                      not_after=utc(f.not_after), status="active")
    row.holder_organization = f.holder_organization
    row.authenticated_at = utc(f.authenticated_at) if f.authenticated_at else None
    revoked = bool(card.registrations) and all(
        r.status is RegistrationStatus.REVOKED for r in card.registrations.values())
    # "expired" is informational: queries check the validity dates themselves.
    row.status = "revoked" if revoked else "expired" if now > f.not_after else "active"
    session.add(row)
    session.flush()
    assert row.id is not None
    existing = {(r.entity, r.domain): r for r in session.exec(
        select(CardRegistrationRow).where(CardRegistrationRow.card_id == row.id))}
    for (entity, domain), reg in card.registrations.items():
        r = existing.get((entity, domain.value)) or CardRegistrationRow(
            card_id=row.id, entity=entity, domain=domain.value, status=reg.status.value,
            department_name=reg.department_name, contact={},
            registered_at=utc(reg.registered_at))
        r.status, r.department_name = reg.status.value, reg.department_name
        r.contact, r.registered_at = reg.contact.model_dump(mode="json"), utc(reg.registered_at)
        session.add(r)


def _save_propagation(session: Session, prop: PendingPropagation, now: datetime) -> None:
    s = prop.scheduled
    row = session.get(PendingPropagationRow, str(s.propagation_id))
    if row is None:
        row = PendingPropagationRow(
            propagation_id=str(s.propagation_id), kind=s.kind.value, network=s.source.network,
            target_entity=s.target_entity, domain=s.source.domain.value,
            user_id=s.source.user_id, immediate=s.immediate, status=prop.status.value,
            due_at=utc(s.due_at), scheduled=s.model_dump(mode="json"), created_at=utc(now))
    row.status, row.note = prop.status.value, prop.note[:500]
    if prop.status is not PropagationStatus.PENDING:
        row.done_at = utc(now)
    session.add(row)
