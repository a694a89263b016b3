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

QT: sa.Table = QualificationRow.__table__  # type: ignore[attr-defined]
CT: sa.Table = ContractorRow.__table__  # type: ignore[attr-defined]
KT: sa.Table = CardRow.__table__  # type: ignore[attr-defined]
RT: sa.Table = CardRegistrationRow.__table__  # type: ignore[attr-defined]
FT: sa.Table = PendingConfirmationRow.__table__  # type: ignore[attr-defined]
PT: sa.Table = PendingPropagationRow.__table__  # type: ignore[attr-defined]

_RECORD = [QT.c[name] for name in RECORD_COLUMNS]
_DOMAINS = {d.value: d for d in Domain}

Command = (CardRegistrationRequested | RegistrationConfirmed | ContactChangeRequested
           | CardRenewalRequested)


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
        self._loaded: set[tuple[str, ...]] = set()
        """What was asked of the database already: ("q", entity, user), ("u", network,
        user) for contractors and cards by owner, ("k", network, company key),
        ("n", network, 法人番号), ("c", issuer, serial), ("f", confirmation id)."""

    # -- reading ------------------------------------------------------------------------

    def load(self, session: Session, commands: Iterable[Payload]) -> None:
        """Make sure ``world`` holds all that the rules may look at for ``commands``."""
        cmds = [c for c in commands if isinstance(c, Command)]
        cmds = [c for c in cmds if id(c) not in self._covered]
        if not cmds:
            return
        self._covered.update(map(id, cmds))
        self._confirmations(session, [str(c.confirmation_id) for c in cmds
                                      if isinstance(c, RegistrationConfirmed)])
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
        company: dict[str, set[tuple[str, str]]] = {}
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
            wanted.add(("k", trade_name_key(r.trade_name)))
            if q is not None and q.corporate_number:
                wanted.add(("n", q.corporate_number))
        self._contractors(session, users, company)
        self._cards(session, users, keys)

    def _registration_of(self, cmd: Payload) -> CardRegistrationRequested | None:
        if isinstance(cmd, CardRegistrationRequested):
            return cmd
        if isinstance(cmd, RegistrationConfirmed):
            held = self.world.confirmations.get(cmd.confirmation_id)
            return held.command if held else None
        return None

    def _missing(self, wanted: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
        missing = sorted(set(wanted) - self._loaded)
        self._loaded.update(missing)
        return missing

    def _confirmations(self, session: Session, ids: list[str]) -> None:
        missing = [m[1] for m in self._missing(("f", i) for i in ids)]
        if not missing:
            return
        for p in session.execute(sa.select(FT).where(_in(session, FT.c.confirmation_id, missing))):
            cid = uuid.UUID(p.confirmation_id)
            if cid not in self.world.confirmations:
                held = PendingConfirmation(
                    cid, CardRegistrationRequested.model_validate_json(json.dumps(p.command)),
                    aware(p.created_at))
                self.world.confirmations[cid] = self.base.confirmations[cid] = held

    def _qualifications(self, session: Session, pairs: set[tuple[str, str]]) -> None:
        missing = self._missing(("q", e, u) for e, u in pairs)
        if not missing:
            return
        entities, users = sorted({m[1] for m in missing}), sorted({m[2] for m in missing})
        # A superset (entities x users) comes back; every row of it is current data.
        # Just the record's columns (not the verifier, key and times), positionally.
        rows = session.execute(sa.select(QT.c.entity, QT.c.domain, *_RECORD).where(
            _in(session, QT.c.user_id, users), _in(session, QT.c.entity, entities)))
        known, base = self.world.qualifications, self.base.qualifications
        for entity, domain, *values in rows:
            key = (entity, _DOMAINS[domain], values[0])
            if key not in known:
                known[key] = base[key] = record_from(values)
        self._loaded.update(("q", e, u) for e in entities for u in users)

    def _contractors(self, session: Session, users: dict[str, set[str]],
                     company: dict[str, set[tuple[str, str]]]) -> None:
        for network in sorted(users.keys() | company.keys()):
            wanted = [("u", network, u) for u in users.get(network, ())] + [
                (kind, network, value) for kind, value in company.get(network, ())]
            missing = self._missing(wanted)
            if not missing:
                continue
            by: dict[str, list[str]] = {"u": [], "k": [], "n": []}
            for kind, _, value in missing:
                by[kind].append(value)
            # One index look-up per value (storage.bulk.matching), not one OR of arrays:
            # PostgreSQL ran that as a scan of every contractor of the network, a batch's
            # slowest statement, growing with the registry. The 商号 key and 法人番号 have
            # their own indexes; their network is checked here, so that only those serve.
            selects = [matching(session, CT, CT.c.user_id, by["u"], equal={CT.c.network: network})
                       ] if by["u"] else []
            selects += [matching(session, CT, column, values)
                        for column, values in ((CT.c.company_key, by["k"]),
                                               (CT.c.corporate_number, by["n"])) if values]
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
        wanted_keys = [(m[1], m[2]) for m in self._missing(("c", *k) for k in keys)]
        # Cards by owner have their own marks ("o"): "u" is the contractors'.
        owners = list(self._missing(("o", n, u) for n, us in users.items() for u in us))
        selects = [matching(session, KT, KT.c.user_id, sorted(m[2] for m in owners if m[1] == n),
                            equal={KT.c.network: n}) for n in sorted({m[1] for m in owners})]
        if wanted_keys:
            # One look-up per issuer (they are few), each probing (issuer, serial).
            selects += [matching(session, KT, KT.c.serial,
                                 sorted({k[1] for k in wanted_keys if k[0] == issuer}),
                                 equal={KT.c.issuer: issuer})
                        for issuer in sorted({k[0] for k in wanted_keys})]
        if not selects:
            return
        # Look-ups joined by UNION ALL, not one OR (see _contractors); a card found by both
        # its owner and its key comes back twice and is taken once.
        found = {r.id: r for r in session.execute(_union_all(selects))}
        rows = [r for r in found.values() if (r.issuer, r.serial) not in self.world.cards]
        regs: dict[int, list[Any]] = {}
        if rows:
            for r in session.execute(sa.select(RT).where(
                    any_of(session, RT.c.card_id, [c.id for c in rows]))):
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
            self._loaded.add(("q", update.procuring_entity, row.user_id))

    # -- writing ------------------------------------------------------------------------

    def finish(self, session: Session) -> None:
        """Write what the batch's events changed, in bulk (inside the batch transaction).

        Once, at the batch's end: the batch is done with then. (It used to copy its World
        as the new base, for a second call that nobody makes: 2 % of a registration's CPU,
        the copy filing every contractor and card again.)
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
            insert_rows(session, CT, [{**r, "created_at": utc(now)} for r in rows[:len(new)]])
        if changed:
            session.execute(sa.update(CT).where(
                CT.c.network == sa.bindparam("k_network"),
                CT.c.user_id == sa.bindparam("k_user_id")).values(
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
                for row, made_id in zip(rows, next_ids(session, KT, len(rows)), strict=True):
                    row["id"] = made_id
                    self._card_ids[(row["issuer"], row["serial"])] = made_id
                insert_rows(session, KT, rows)
            else:
                for made in session.execute(sa.insert(KT).returning(
                        KT.c.id, KT.c.issuer, KT.c.serial), rows):
                    self._card_ids[(made.issuer, made.serial)] = made.id
        if changed:
            session.execute(sa.update(KT).where(KT.c.id == sa.bindparam("k_id")).values(
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
        insert_rows(session, RT, inserts)
        if updates:
            session.execute(sa.update(RT).where(
                RT.c.card_id == sa.bindparam("k_card_id"),
                RT.c.entity == sa.bindparam("k_entity"),
                RT.c.domain == sa.bindparam("k_domain")).values(
                status=sa.bindparam("status"), department_name=sa.bindparam("department_name"),
                contact=sa.bindparam("contact"), registered_at=sa.bindparam("registered_at")),
                updates)

    def _write_confirmations(self, session: Session, now: datetime) -> None:
        gone = [str(c) for c in self.base.confirmations.keys() - self.world.confirmations.keys()]
        if gone:
            session.execute(sa.delete(FT).where(_in(session, FT.c.confirmation_id, sorted(gone))))
        fresh = {str(cid): p for cid, p in self.world.confirmations.items()
                 if cid not in self.base.confirmations}
        if not fresh:
            return
        # Held once before and held again (the person retried): the first row stays.
        there = set(session.execute(sa.select(FT.c.confirmation_id).where(
            _in(session, FT.c.confirmation_id, sorted(fresh)))).scalars())
        rows = [{"confirmation_id": cid, "issuer": p.command.card.issuer,
                 "serial": p.command.card.serial, "command": json_of(p.command),
                 "created_at": utc(now)} for cid, p in fresh.items() if cid not in there]
        insert_rows(session, FT, rows)

    def _write_propagations(self, session: Session, now: datetime) -> None:
        new, changed = _diff(self.base.propagations, self.world.propagations)
        ids = [str(p.scheduled.propagation_id) for p in new]
        there = set(session.execute(sa.select(PT.c.propagation_id).where(
            _in(session, PT.c.propagation_id, ids))).scalars()) if ids else set()
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
        insert_rows(session, PT, inserts)
        for prop in changed:
            values: dict[str, Any] = {"status": prop.status.value, "note": prop.note[:500]}
            if prop.status is not PropagationStatus.PENDING:
                values["done_at"] = utc(now)
            session.execute(sa.update(PT).where(
                PT.c.propagation_id == str(prop.scheduled.propagation_id)).values(**values))


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
