"""The registration state of one batch of commands: read at once, written back at once.

The hub hands the registration consumer its records in batches, one database
transaction each (hub/processing.py). :func:`prepare_batch` (the consumer's
``prepare`` hook) loads the state every command of the batch may look at (REG-3 hints,
REG-11 look-alikes, the cards of REG-1 / RNW-7, held confirmations) in a few queries with
IN lists, into one shared :class:`~.world.World`. The pure rules then decide command by
command on that World and their events evolve it, so that commands of one batch for the
same contractor see each other's effects in order (same key, same partition, same
order). :meth:`Batch.finish` writes what differs from the loaded state in bulk: new rows
with one COPY per table on PostgreSQL (:mod:`storage.bulk`), changed rows with
executemany UPDATEs, no ORM unit of work.

A Batch is an identity map: a row is loaded once, and a loaded (or created) entry is
never replaced by a later read, so the World stays ahead of the database until finish.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from pipelines.registration.models import (
    CardRegistrationRow,
    CardRow,
    ContractorRow,
    PendingConfirmationRow,
    PendingPropagationRow,
    QualificationRow,
)
from pipelines.registration.policy import PolicyBook
from pipelines.registration.store import (
    RECORD_COLUMNS,
    aware,
    card_of,
    contact_of,
    record_from,
    utc,
)
from pipelines.registration.world import (
    Card,
    CardKey,
    Contractor,
    PendingConfirmation,
    PropagationStatus,
    RegistrationStatus,
    World,
)
from schemas.envelope import Envelope
from schemas.qualification import QualificationUpdated
from schemas.registration import (
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    Domain,
    HeldRegistrationRejected,
    RegistrationConfirmed,
)
from schemas.registry import Payload
from schemas.text import confusable_variants, trade_name_key
from storage.bulk import (
    any_of,
    insert_rows,
    is_postgres_session,
    json_of,
    matching,
    next_ids,
)

__all__ = ["Batch", "prepare_batch"]

K = TypeVar("K")
V = TypeVar("V")

QUALIFICATIONS: sa.Table = QualificationRow.__table__  # type: ignore[attr-defined]
CONTRACTORS: sa.Table = ContractorRow.__table__  # type: ignore[attr-defined]
CARDS: sa.Table = CardRow.__table__  # type: ignore[attr-defined]
CARD_REGISTRATIONS: sa.Table = CardRegistrationRow.__table__  # type: ignore[attr-defined]
PENDING_CONFIRMATIONS: sa.Table = PendingConfirmationRow.__table__  # type: ignore[attr-defined]
PENDING_PROPAGATIONS: sa.Table = PendingPropagationRow.__table__  # type: ignore[attr-defined]

_RECORD = [QUALIFICATIONS.c[name] for name in RECORD_COLUMNS]
_DOMAINS = {d.value: d for d in Domain}


class LookUp(StrEnum):
    """What a batch asks the database for, by the two values that name it."""

    QUALIFICATION = "qualification"
    """資格審査情報 rows: (procuring entity, user ID)."""
    CONTRACTOR = "contractor"
    """A contractor: (network, user ID)."""
    COMPANY_KEY = "company-key"
    """Contractors by 商号 key (REG-11 look-alikes): (network, key)."""
    CORPORATE_NUMBER = "corporate-number"
    """Contractors by 法人番号: (network, number)."""
    CARDS_OF_OWNER = "cards-of-owner"
    """The cards of a contractor: (network, user ID)."""
    CARD = "card"
    """One card: (issuer, serial)."""
    CONFIRMATION = "confirmation"
    """A held registration: (confirmation id, "")."""


Asked = tuple[LookUp, str, str]
"""One look-up a batch has made: (kind, scope, value), the two values as its kind says.
A plain tuple: a batch makes thousands of them."""


Command = (CardRegistrationRequested | RegistrationConfirmed | HeldRegistrationRejected
           | ContactChangeRequested | CardRenewalRequested)


def _in(session: Session, column: sa.ColumnElement[Any],
        values: Sequence[str]) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, not thousands."""
    return any_of(session, column, values, sa.String())


class Batch:
    """One batch's World: ``world`` (evolved by the rules) and ``base`` (as loaded)."""

    def __init__(self, book: PolicyBook) -> None:
        self.book = book
        self.world = World()
        self.base = World()
        self.now: datetime | None = None
        """The processing time of the batch's commands (set by the handler)."""
        self._card_ids: dict[CardKey, int] = {}
        self._covered: set[int] = set()
        self._finished = False
        """The commands (by id) whose state is loaded: the handler's own call is free."""
        self._loaded: set[Asked] = set()
        """What was asked of the database already."""

    # -- reading ------------------------------------------------------------------------

    def load(self, session: Session, commands: Iterable[Payload]) -> None:
        """Make sure ``world`` holds all that the rules may look at for ``commands``."""
        cmds = [c for c in commands if isinstance(c, Command)]
        cmds = [c for c in cmds if id(c) not in self._covered]
        if not cmds:
            return
        self._covered.update(map(id, cmds))
        self._confirmations(session, [
            str(c.confirmation_id) for c in cmds
            if isinstance(c, RegistrationConfirmed | HeldRegistrationRejected)])
        registrations = [r for r in map(self._registration_of, cmds) if r is not None]
        nets: dict[str, tuple[str, ...]] = {}
        users: dict[str, set[str]] = {}
        for c in (*cmds, *registrations):
            network = self.book.network_of(c.procuring_entity) or c.procuring_entity
            nets[network] = self.book.entities_in(network) or (c.procuring_entity,)
            users.setdefault(network, set()).add(c.user_id)
        self._qualifications(session, {(e, u) for net, us in users.items()
                                       for e in nets[net] for u in us})
        # REG-3's hint "a look-alike user ID exists" is only read when the user ID itself
        # is not found: only then are its confusable variants worth a query.
        variants = {(e, v) for r in registrations
                    if self.world.qualification(r.procuring_entity, r.domain, r.user_id) is None
                    for v in confusable_variants(r.user_id) for e in nets[
                        self.book.network_of(r.procuring_entity) or r.procuring_entity]}
        if variants:
            self._qualifications(session, variants)
        keys: list[CardKey] = []
        company: dict[str, set[tuple[LookUp, str]]] = {}
        for c in cmds:
            if isinstance(c, RegistrationConfirmed | ContactChangeRequested):
                keys.append(c.card.key)
            elif isinstance(c, CardRenewalRequested):
                keys += [c.old_card.key, c.new_card.key]
        for r in registrations:
            network = self.book.network_of(r.procuring_entity) or r.procuring_entity
            keys.append(r.card.key)
            q = self.world.qualification(r.procuring_entity, r.domain, r.user_id)
            wanted = company.setdefault(network, set())
            wanted.add((LookUp.COMPANY_KEY, trade_name_key(r.trade_name)))
            if q is not None and q.corporate_number:
                wanted.add((LookUp.CORPORATE_NUMBER, q.corporate_number))
        self._contractors(session, users, company)
        self._cards(session, users, keys)

    def _registration_of(self, cmd: Payload) -> CardRegistrationRequested | None:
        if isinstance(cmd, CardRegistrationRequested):
            return cmd
        if isinstance(cmd, RegistrationConfirmed):
            held = self.world.confirmations.get(cmd.confirmation_id)
            return held.command if held else None
        return None

    def _missing(self, wanted: Iterable[Asked]) -> list[Asked]:
        missing = sorted(set(wanted) - self._loaded)
        self._loaded.update(missing)
        return missing

    def _confirmations(self, session: Session, ids: list[str]) -> None:
        missing = [scope for _, scope, _ in
                   self._missing((LookUp.CONFIRMATION, i, "") for i in ids)]
        if not missing:
            return
        for p in session.execute(sa.select(PENDING_CONFIRMATIONS).where(
                _in(session, PENDING_CONFIRMATIONS.c.confirmation_id, missing))):
            cid = uuid.UUID(p.confirmation_id)
            if cid not in self.world.confirmations:
                held = PendingConfirmation(
                    cid, CardRegistrationRequested.model_validate_json(json.dumps(p.command)),
                    aware(p.created_at))
                self.world.confirmations[cid] = self.base.confirmations[cid] = held

    def _qualifications(self, session: Session, pairs: set[tuple[str, str]]) -> None:
        missing = self._missing((LookUp.QUALIFICATION, e, u) for e, u in pairs)
        if not missing:
            return
        entities = sorted({entity for _, entity, _ in missing})
        users = sorted({user for _, _, user in missing})
        # A superset (entities x users) comes back; every row of it is current data.
        # Just the record's columns (not the verifier, key and times), positionally.
        rows = session.execute(
            sa.select(QUALIFICATIONS.c.entity, QUALIFICATIONS.c.domain, *_RECORD).where(
                _in(session, QUALIFICATIONS.c.user_id, users),
                _in(session, QUALIFICATIONS.c.entity, entities)))
        known, base = self.world.qualifications, self.base.qualifications
        for entity, domain, *values in rows:
            key = (entity, _DOMAINS[domain], values[0])
            if key not in known:
                known[key] = base[key] = record_from(values)
        self._loaded.update((LookUp.QUALIFICATION, e, u) for e in entities for u in users)

    def _contractors(self, session: Session, users: dict[str, set[str]],
                     company: dict[str, set[tuple[LookUp, str]]]) -> None:
        for network in sorted(users.keys() | company.keys()):
            wanted: list[Asked] = [
                (LookUp.CONTRACTOR, network, u) for u in users.get(network, ())] + [
                (kind, network, value) for kind, value in company.get(network, ())]
            missing = self._missing(wanted)
            if not missing:
                continue
            by: dict[LookUp, list[str]] = {
                LookUp.CONTRACTOR: [], LookUp.COMPANY_KEY: [], LookUp.CORPORATE_NUMBER: []}
            for kind, _, value in missing:
                by[kind].append(value)
            # One index look-up per value (storage.bulk.matching), not one OR of arrays:
            # PostgreSQL ran that as a scan of every contractor of the network, a batch's
            # slowest statement, growing with the registry. The 商号 key and 法人番号 have
            # their own indexes; their network is checked here, so that only those serve.
            by_user_id = by[LookUp.CONTRACTOR]
            selects = [matching(session, CONTRACTORS, CONTRACTORS.c.user_id, by_user_id,
                                equal={CONTRACTORS.c.network: network})] if by_user_id else []
            selects += [matching(session, CONTRACTORS, column, values)
                        for column, values in (
                            (CONTRACTORS.c.company_key, by[LookUp.COMPANY_KEY]),
                            (CONTRACTORS.c.corporate_number, by[LookUp.CORPORATE_NUMBER]))
                        if values]
            for c in session.execute(_union_all(selects)):
                if c.network != network:
                    continue
                key = (c.network, c.user_id)
                if key not in self.world.contractors:
                    rep = c.representative_contact
                    self.world.contractors[key] = self.base.contractors[key] = Contractor(
                        c.network, c.user_id, c.company_id, c.company_name, c.company_key,
                        c.corporate_number, contact_of(rep) if rep else None)

    def _cards(self, session: Session, users: dict[str, set[str]], keys: list[CardKey]) -> None:
        wanted_keys = [(issuer, serial) for _, issuer, serial
                       in self._missing((LookUp.CARD, *k) for k in keys)]
        # Cards by owner are asked for apart from the contractors of the same user IDs.
        owners = self._missing((LookUp.CARDS_OF_OWNER, n, u)
                               for n, us in users.items() for u in us)
        selects = [matching(session, CARDS, CARDS.c.user_id,
                            sorted(user for _, net, user in owners if net == n),
                            equal={CARDS.c.network: n})
                   for n in sorted({net for _, net, _ in owners})]
        if wanted_keys:
            # One look-up per issuer (they are few), each probing (issuer, serial).
            selects += [matching(session, CARDS, CARDS.c.serial,
                                 sorted({serial for i, serial in wanted_keys if i == issuer}),
                                 equal={CARDS.c.issuer: issuer})
                        for issuer in sorted({i for i, _ in wanted_keys})]
        if not selects:
            return
        # Look-ups joined by UNION ALL, not one OR (see _contractors); a card found by both
        # its owner and its key comes back twice and is taken once.
        found = {r.id: r for r in session.execute(_union_all(selects))}
        rows = [r for r in found.values() if (r.issuer, r.serial) not in self.world.cards]
        regs: dict[int, list[Any]] = {}
        if rows:
            for r in session.execute(sa.select(CARD_REGISTRATIONS).where(
                    any_of(session, CARD_REGISTRATIONS.c.card_id, [c.id for c in rows]))):
                regs.setdefault(r.card_id, []).append(r)
        for row in rows:
            key = (row.issuer, row.serial)
            self._card_ids[key] = row.id
            self.world.cards[key] = self.base.cards[key] = card_of(row, regs.get(row.id, ()))

    def updated_qualifications(self, update: QualificationUpdated) -> None:
        """The batch's own QualificationUpdated rows (written by the ORM upsert) win."""
        for row in update.rows:
            key = (update.procuring_entity, update.domain, row.user_id)
            self.world.qualifications[key] = self.base.qualifications[key] = row
            self._loaded.add((LookUp.QUALIFICATION, update.procuring_entity, row.user_id))

    # -- writing ------------------------------------------------------------------------

    def finish(self, session: Session) -> None:
        """Write what the batch's events changed, in bulk (inside the batch transaction).

        Once, at the batch's end: the batch is done with then, so its World is not kept
        as a base for a later call, and a second call is refused rather than written
        against a stale base.
        """
        if self._finished:
            raise RuntimeError("Batch.finish: the batch was written already")
        self._finished = True
        if self.now is not None:
            self._write_contractors(session, self.now)
            self._write_cards(session, self.now)
            self._write_confirmations(session, self.now)
            self._write_propagations(session, self.now)

    def _write_contractors(self, session: Session, now: datetime) -> None:
        new, changed = _diff(self.base.contractors, self.world.contractors)
        rows = [{"network": c.network, "user_id": c.user_id, "company_id": c.company_id,
                 "company_name": c.company_name, "company_key": c.company_key,
                 "corporate_number": c.corporate_number,
                 "representative_contact": json_of(c.representative_contact)}
                for c in new + changed]
        if new:
            insert_rows(session, CONTRACTORS,
                        [{**r, "created_at": utc(now)} for r in rows[:len(new)]])
        if changed:
            session.execute(sa.update(CONTRACTORS).where(
                CONTRACTORS.c.network == sa.bindparam("k_network"),
                CONTRACTORS.c.user_id == sa.bindparam("k_user_id")).values(
                company_name=sa.bindparam("company_name"),
                company_key=sa.bindparam("company_key"),
                corporate_number=sa.bindparam("corporate_number"),
                representative_contact=sa.bindparam("representative_contact")),
                [{"k_network": r["network"], "k_user_id": r["user_id"],
                  **{k: r[k] for k in ("company_name", "company_key", "corporate_number",
                                       "representative_contact")}}
                 for r in rows[len(new):]])

    def _write_cards(self, session: Session, now: datetime) -> None:
        new, changed = _diff(self.base.cards, self.world.cards)
        if new:
            rows = [{"issuer": c.facts.issuer, "serial": c.facts.serial, "network": c.network,
                     "user_id": c.user_id, "holder_name": c.facts.holder_name,
                     "holder_address": c.facts.holder_address,
                     "not_before": utc(c.facts.not_before), "not_after": utc(c.facts.not_after),
                     **_card_state(c, now)} for c in new]
            if is_postgres_session(session):
                # Ids taken from the sequence first, then one COPY (no RETURNING needed).
                for row, made_id in zip(rows, next_ids(session, CARDS, len(rows)), strict=True):
                    row["id"] = made_id
                    self._card_ids[(row["issuer"], row["serial"])] = made_id
                insert_rows(session, CARDS, rows)
            else:
                for made in session.execute(sa.insert(CARDS).returning(
                        CARDS.c.id, CARDS.c.issuer, CARDS.c.serial), rows):
                    self._card_ids[(made.issuer, made.serial)] = made.id
        if changed:
            session.execute(sa.update(CARDS).where(CARDS.c.id == sa.bindparam("k_id")).values(
                holder_organization=sa.bindparam("holder_organization"),
                authenticated_at=sa.bindparam("authenticated_at"),
                status=sa.bindparam("status")),
                [{"k_id": self._card_ids[c.facts.key], **_card_state(c, now)} for c in changed])
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for card in new + changed:
            before = self.base.cards.get(card.facts.key)
            old = before.registrations if before else {}
            for (entity, domain), reg in card.registrations.items():
                if old.get((entity, domain)) == reg:
                    continue
                row = {"status": reg.status.value, "department_name": reg.department_name,
                       "contact": json_of(reg.contact),
                       "registered_at": utc(reg.registered_at)}
                where = {"card_id": self._card_ids[card.facts.key], "entity": entity,
                         "domain": domain.value}
                if (entity, domain) in old:
                    updates.append({**{f"k_{k}": v for k, v in where.items()}, **row})
                else:
                    inserts.append({**where, **row})
        insert_rows(session, CARD_REGISTRATIONS, inserts)
        if updates:
            session.execute(sa.update(CARD_REGISTRATIONS).where(
                CARD_REGISTRATIONS.c.card_id == sa.bindparam("k_card_id"),
                CARD_REGISTRATIONS.c.entity == sa.bindparam("k_entity"),
                CARD_REGISTRATIONS.c.domain == sa.bindparam("k_domain")).values(
                status=sa.bindparam("status"), department_name=sa.bindparam("department_name"),
                contact=sa.bindparam("contact"), registered_at=sa.bindparam("registered_at")),
                updates)

    def _write_confirmations(self, session: Session, now: datetime) -> None:
        gone = [str(c) for c in self.base.confirmations.keys() - self.world.confirmations.keys()]
        if gone:
            session.execute(sa.delete(PENDING_CONFIRMATIONS).where(
                _in(session, PENDING_CONFIRMATIONS.c.confirmation_id, sorted(gone))))
        fresh = {str(cid): p for cid, p in self.world.confirmations.items()
                 if cid not in self.base.confirmations}
        if not fresh:
            return
        # Held once before and held again (the person retried): the first row stays.
        there = set(session.execute(sa.select(PENDING_CONFIRMATIONS.c.confirmation_id).where(
            _in(session, PENDING_CONFIRMATIONS.c.confirmation_id, sorted(fresh)))).scalars())
        rows = [{"confirmation_id": cid, "issuer": p.command.card.issuer,
                 "serial": p.command.card.serial, "command": json_of(p.command),
                 "created_at": utc(now)} for cid, p in fresh.items() if cid not in there]
        insert_rows(session, PENDING_CONFIRMATIONS, rows)

    def _write_propagations(self, session: Session, now: datetime) -> None:
        new, changed = _diff(self.base.propagations, self.world.propagations)
        ids = [str(p.scheduled.propagation_id) for p in new]
        there = set(session.execute(sa.select(PENDING_PROPAGATIONS.c.propagation_id).where(
            _in(session, PENDING_PROPAGATIONS.c.propagation_id, ids))).scalars()) if ids else set()
        inserts = []
        for prop in new:
            s = prop.scheduled
            if str(s.propagation_id) in there:
                changed.append(prop)
                continue
            inserts.append({
                "propagation_id": str(s.propagation_id), "kind": s.kind.value,
                "network": s.source.network, "target_entity": s.target_entity,
                "domain": s.source.domain.value, "user_id": s.source.user_id,
                "immediate": s.immediate, "status": prop.status.value, "attempts": 0,
                "note": prop.note[:500], "due_at": utc(s.due_at),
                "scheduled": json_of(s), "created_at": utc(now),
                "done_at": None if prop.status is PropagationStatus.PENDING else utc(now)})
        insert_rows(session, PENDING_PROPAGATIONS, inserts)
        for prop in changed:
            values: dict[str, Any] = {"status": prop.status.value, "note": prop.note[:500]}
            if prop.status is not PropagationStatus.PENDING:
                values["done_at"] = utc(now)
            session.execute(sa.update(PENDING_PROPAGATIONS).where(
                PENDING_PROPAGATIONS.c.propagation_id == str(prop.scheduled.propagation_id),
            ).values(**values))


def _union_all(selects: list[sa.Select[Any]]) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


def _diff(before: dict[K, V], after: dict[K, V]) -> tuple[list[V], list[V]]:
    """(added, changed) values of ``after`` against ``before``."""
    new = [v for k, v in after.items() if k not in before]
    changed = [v for k, v in after.items() if k in before and before[k] != v]
    return new, changed


def _card_state(card: Card, now: datetime) -> dict[str, Any]:
    f = card.facts
    revoked = bool(card.registrations) and all(
        r.status is RegistrationStatus.REVOKED for r in card.registrations.values())
    # "expired" is informational: queries check the validity dates themselves.
    status = "revoked" if revoked else "expired" if now > f.not_after else "active"
    return {"holder_organization": f.holder_organization, "status": status,
            "authenticated_at": utc(f.authenticated_at) if f.authenticated_at else None}


def prepare_batch(book: PolicyBook, session: Session,
                  envelopes: Sequence[Envelope[Any]]) -> Batch:
    """A Batch with the state of ``envelopes``' commands loaded."""
    batch = Batch(book)
    batch.load(session, [e.payload for e in envelopes])
    return batch
