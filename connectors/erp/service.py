# mypy: disallow-subclassing-any=False, disallow-untyped-decorators=False
# (spyne ships no type hints: its ComplexModel, ServiceBase and @rpc are Any to mypy.)
"""The reference municipal ERP (財務会計) as a SOAP 1.1 service, built with spyne.

Three operations, each idempotent on its business key: RegisterContract,
RegisterAdvancePaymentRequest, RegisterPaymentRequest. The same key with the
same content answers the first receipt again (``duplicate`` true); the same key
with other content is a ``Client.BusinessKeyConflict`` fault. Registrations are
kept in SQLite. Requests are parsed by spyne's lxml parser with entities, DTDs and
network access off. The ERP checks what a real one checks and answers with SOAP
faults the connector maps to rule IDs:

- ``Client.UnknownContract``: a payment for a contract it does not hold (SUR-6, INV-3)
- ``Client.AmountExceeded``: an advance payment over 40 % of the contract amount,
  or payments over the contract amount (INV-3)
- ``Client.InvalidInvoiceNumber``: not T + a valid 法人番号 (INV-1)
- ``Client.UnknownPaymentRequest``: a correction replacing a payment request it does not
  hold (or one already replaced) for that contract (INV-6)
- ``Client.PaymentAlreadyMade``: a correction replacing a payment request already paid (INV-6)
- ``Client.InvalidData``: anything else wrong with the data
- ``Server.Maintenance``: inside a maintenance window, with the time it ends (WIN-2)
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from spyne import (
    Application,
    Boolean,
    ComplexModel,
    Date,
    DateTime,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11
from stdnum.jp import cn

from connectors.erp.mapping import NAMESPACE

__all__ = ["ErpLedger", "PeerState", "build_application"]

ADVANCE_SHARE = 0.4
"""Advance payments (前払金) up to 40 % of the contract amount, the usual public-works cap."""

_KEY = Unicode(min_occurs=1, nillable=False, min_len=1, max_len=80,
               pattern=r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_CONTRACT_NO = Unicode(min_occurs=1, nillable=False, min_len=1, max_len=30)
_CONTRACTOR_ID = Unicode(min_occurs=1, nillable=False, pattern=r"[0-9]{16}")
_NAME = Unicode(min_occurs=1, nillable=False, min_len=1, max_len=200)
_AMOUNT = Integer(min_occurs=1, nillable=False, ge=1)
_DATE = Date(min_occurs=1, nillable=False)


class ContractRegistration(ComplexModel):
    __namespace__ = NAMESPACE
    business_key = _KEY
    contract_number = _CONTRACT_NO
    contractor_id = _CONTRACTOR_ID
    contractor_name = _NAME
    subject = _NAME
    amount_jpy = _AMOUNT
    contract_date = _DATE
    period_start = _DATE
    period_end = _DATE


class AdvancePaymentRequest(ComplexModel):
    __namespace__ = NAMESPACE
    business_key = _KEY
    contract_number = _CONTRACT_NO
    contractor_id = _CONTRACTOR_ID
    amount_jpy = _AMOUNT
    request_date = _DATE
    surety_number = Unicode(min_occurs=1, nillable=False, max_len=20)


class PaymentRequest(ComplexModel):
    __namespace__ = NAMESPACE
    business_key = _KEY
    contract_number = _CONTRACT_NO
    contractor_id = _CONTRACTOR_ID
    amount_jpy = _AMOUNT
    request_date = _DATE
    invoice_number = Unicode(min_occurs=1, nillable=False, max_len=14)
    due_date = Date(min_occurs=0, nillable=False)
    replaces_business_key = Unicode(min_occurs=0, nillable=False, min_len=1, max_len=80,
                                    pattern=r"[A-Za-z0-9][A-Za-z0-9._:\-]*")


class RegistrationReceipt(ComplexModel):
    __namespace__ = NAMESPACE
    business_key = Unicode
    erp_reference = Unicode
    registered_at = DateTime(timezone=True)
    duplicate = Boolean


@dataclass
class PeerState:
    """What the test or operator set on the running peer: a window, a slowness."""

    maintenance_until: datetime | None = None
    delay_s: float = 0.0


class ErpLedger:
    """The ERP's registrations in SQLite; one lock, so one connection serves all threads."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS registration (business_key TEXT PRIMARY KEY, "
            "kind TEXT NOT NULL, fingerprint TEXT NOT NULL, erp_reference TEXT NOT NULL, "
            "registered_at TEXT NOT NULL, contract_number TEXT NOT NULL, amount INTEGER NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(registration)")}
        for column in ("replaced_by TEXT", "paid_on TEXT", "due_date TEXT"):  # added for INV-6
            if column.split()[0] not in columns:
                self._db.execute(f"ALTER TABLE registration ADD COLUMN {column}")

    def mark_paid(self, business_key: str, paid_on: date) -> None:
        """The ERP's payment run paid this payment request."""
        with self._lock:
            self._db.execute("UPDATE registration SET paid_on = ? WHERE business_key = ?",
                             (paid_on.isoformat(), business_key))

    def payment(self, business_key: str) -> dict[str, Any] | None:
        """A payment request as the ERP holds it: amount, due date, replaced by, paid on."""
        with self._lock:
            row = self._db.execute("SELECT amount, due_date, replaced_by, paid_on FROM "
                                   "registration WHERE business_key = ? AND kind = 'P'",
                                   (business_key,)).fetchone()
        if row is None:
            return None
        return {"amount": row[0], "due_date": row[1] and date.fromisoformat(row[1]),
                "replaced_by": row[2], "paid_on": row[3] and date.fromisoformat(row[3])}

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            sql, args = "SELECT count(*) FROM registration", tuple[str, ...]()
            if kind:
                sql, args = sql + " WHERE kind = ?", (kind,)
            return int(self._db.execute(sql, args).fetchone()[0])

    def _contract_amount(self, contract_number: str) -> int | None:
        row = self._db.execute("SELECT amount FROM registration WHERE kind = 'C' AND "
                               "contract_number = ?", (contract_number,)).fetchone()
        return None if row is None else int(row[0])

    def _paid(self, contract_number: str, kind: str) -> int:
        row = self._db.execute("SELECT coalesce(sum(amount), 0) FROM registration WHERE "
                               "kind = ? AND contract_number = ? AND replaced_by IS NULL",
                               (kind, contract_number))
        return int(row.fetchone()[0])

    def register(self, kind: str, record: Any, fields: tuple[str, ...]) -> RegistrationReceipt:
        fingerprint = hashlib.sha256(
            "\x1f".join(f"{f}={getattr(record, f)}" for f in fields
                        if getattr(record, f, None) is not None).encode()).hexdigest()
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, erp_reference, registered_at FROM registration "
                "WHERE business_key = ?", (record.business_key,)).fetchone()
            if row is not None:
                if row[0] != fingerprint:
                    raise Fault("Client.BusinessKeyConflict",
                                f"business key {record.business_key} is registered with "
                                "other content")
                return RegistrationReceipt(
                    business_key=record.business_key, erp_reference=row[1],
                    registered_at=datetime.fromisoformat(row[2]), duplicate=True)
            self._check(kind, record)
            serial = int(self._db.execute("SELECT count(*) FROM registration").fetchone()[0])
            reference = f"{kind}-{serial + 1:08d}"
            now = datetime.now(UTC)
            replaces = getattr(record, "replaces_business_key", None)
            if replaces:
                self._db.execute("UPDATE registration SET replaced_by = ? WHERE business_key = ?",
                                 (record.business_key, replaces))
            due = getattr(record, "due_date", None)
            self._db.execute("INSERT INTO registration (business_key, kind, fingerprint, "
                             "erp_reference, registered_at, contract_number, amount, due_date) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (record.business_key, kind, fingerprint, reference, now.isoformat(),
                              record.contract_number, record.amount_jpy,
                              due.isoformat() if due else None))
        return RegistrationReceipt(business_key=record.business_key, erp_reference=reference,
                                   registered_at=now, duplicate=False)

    def _check(self, kind: str, record: Any) -> None:
        if kind == "C":
            if record.period_end < record.period_start:
                raise Fault("Client.InvalidData", "period_end is before period_start")
            return
        contract = self._contract_amount(record.contract_number)
        if contract is None:
            raise Fault("Client.UnknownContract", f"no contract {record.contract_number}")
        if kind == "A" and self._paid(record.contract_number, "A") + record.amount_jpy > (
                contract * ADVANCE_SHARE):
            raise Fault("Client.AmountExceeded", "advance payments over 40% of the contract")
        if kind == "P":
            number = str(record.invoice_number)
            if not (number.startswith("T") and cn.is_valid(number[1:])):
                raise Fault("Client.InvalidInvoiceNumber", f"not a valid T number: {number}")
            replaced = self._replaced_amount(record)
            if self._paid(record.contract_number, "P") - replaced + record.amount_jpy > contract:
                raise Fault("Client.AmountExceeded", "payments over the contract amount")

    def _replaced_amount(self, record: Any) -> int:
        """The amount of the payment request a correction replaces (INV-6), checked."""
        replaces = record.replaces_business_key
        if not replaces:
            return 0
        row = self._db.execute(
            "SELECT amount, paid_on FROM registration WHERE business_key = ? AND kind = 'P' "
            "AND contract_number = ? AND replaced_by IS NULL",
            (replaces, record.contract_number)).fetchone()
        if row is None:
            raise Fault("Client.UnknownPaymentRequest",
                        f"no open payment request {replaces} for {record.contract_number}")
        if row[1] is not None:
            raise Fault("Client.PaymentAlreadyMade", f"payment request {replaces} was paid")
        return int(row[0])


def _register(ctx: Any, kind: str, record: Any, fields: tuple[str, ...]) -> RegistrationReceipt:
    state: PeerState = ctx.app.erp_state
    if state.delay_s:
        time.sleep(state.delay_s)
    until = state.maintenance_until
    if until is not None and datetime.now(UTC) < until:
        raise Fault("Server.Maintenance", f"ERP maintenance until {until.isoformat()}")
    if record is None:
        raise Fault("Client.InvalidData", "empty request")
    ledger: ErpLedger = ctx.app.erp_ledger
    return ledger.register(kind, record, fields)


class ErpService(ServiceBase):
    """財務会計 registration service (reference implementation)."""

    @rpc(ContractRegistration, _returns=RegistrationReceipt)
    def RegisterContract(ctx: Any, registration: Any) -> RegistrationReceipt:  # noqa: N802, N805
        return _register(ctx, "C", registration, (
            "contract_number", "contractor_id", "contractor_name", "subject", "amount_jpy",
            "contract_date", "period_start", "period_end"))

    @rpc(AdvancePaymentRequest, _returns=RegistrationReceipt)
    def RegisterAdvancePaymentRequest(ctx: Any, request: Any) -> RegistrationReceipt:  # noqa: N802, N805
        return _register(ctx, "A", request, (
            "contract_number", "contractor_id", "amount_jpy", "request_date", "surety_number"))

    @rpc(PaymentRequest, _returns=RegistrationReceipt)
    def RegisterPaymentRequest(ctx: Any, request: Any) -> RegistrationReceipt:  # noqa: N802, N805
        return _register(ctx, "P", request, (
            "contract_number", "contractor_id", "amount_jpy", "request_date", "invoice_number",
            "due_date", "replaces_business_key"))

    @rpc(_returns=Unicode)
    def Ping(ctx: Any) -> str:  # noqa: N802, N805
        return "ERP reference service " + date.today().isoformat()


def build_application(ledger: ErpLedger, state: PeerState) -> Application:
    """The spyne application: SOAP 1.1 in (with schema validation) and out."""
    app = Application([ErpService], tns=NAMESPACE, name="ErpService",
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    app.erp_ledger = ledger
    app.erp_state = state
    return app
