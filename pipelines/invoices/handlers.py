"""Kafka handler of the invoice pipeline: read the contractor's registered issuer numbers
(INV-1) from the registration pipeline's state, decide, record, emit.

The contractor is found by its 企業ID (``reg_contractor.company_id``); the numbers it may
invoice under are the ``invoice_number`` of its qualification rows (``reg_qualification``,
by user ID). Accepted invoices are kept in ``inv_invoice`` (INV-3: paid once) with the state
of their payment: a correction marks the invoice it replaces (INV-6), and
``InvoicePaymentRecorded`` marks one paid, after which no correction replaces it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from pipelines.invoices.models import InvoiceRow
from pipelines.invoices.rules import InvoiceStatus, PriorInvoice, decide_invoice
from pipelines.ports import Handler, HandlerContext, PermanentFailure
from pipelines.registration.models import ContractorRow, QualificationRow
from schemas.envelope import Envelope
from schemas.erp import ErpRegistrationRequested
from schemas.invoice import (
    InvoiceAccepted,
    InvoiceNeedsStaffReview,
    InvoicePaymentRecorded,
    InvoiceRejected,
    InvoiceSubmitted,
)
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec

__all__ = ["EMITS", "HANDLERS", "TOPICS", "handle_invoice_submitted", "handle_payment_recorded",
           "registered_issuer_numbers"]


def registered_issuer_numbers(session: Session, contractor_id: str) -> frozenset[str] | None:
    """The T-numbers in the user data of the contractor with this 企業ID (None: unknown)."""
    users = list(session.exec(select(ContractorRow.user_id).where(
        ContractorRow.company_id == contractor_id)))
    if not users:
        return None
    numbers = session.exec(select(QualificationRow.invoice_number).where(
        col(QualificationRow.user_id).in_(users),
        col(QualificationRow.invoice_number).is_not(None)))
    return frozenset(n for n in numbers if n)


def handle_invoice_submitted(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """INV-1 … INV-6 for one submitted invoice."""
    cmd = envelope.payload
    if not isinstance(cmd, InvoiceSubmitted):
        raise PermanentFailure(f"{envelope.type} reached the invoice handler; check the "
                               "subscription")
    session = ctx.session
    rows = {row.invoice_id: row for row in session.exec(select(InvoiceRow).where(
        InvoiceRow.contractor_id == cmd.contractor_id))}
    before = {n: PriorInvoice(r.status, r.business_key, r.replaced_by) for n, r in rows.items()}
    decision = decide_invoice(cmd, registered=registered_issuer_numbers(session,
                                                                        cmd.contractor_id),
                              accepted_before=before, entity=envelope.procuring_entity)
    if decision.accepted is not None:
        a = decision.accepted
        if a.replaces_invoice_id is not None:
            original = rows[a.replaces_invoice_id]
            original.status = InvoiceStatus.REPLACED
            original.replaced_by = a.invoice_id
            session.add(original)
        session.add(InvoiceRow(contractor_id=a.contractor_id, invoice_id=a.invoice_id,
                               case_id=a.case_id, issuer_number=a.issuer_number,
                               payable_amount=a.payable_amount,
                               source_format=a.source_format.value,
                               business_key=a.erp_business_key, accepted_at=ctx.now,
                               status=InvoiceStatus.REQUESTED,
                               transaction_date=a.transaction_date, due_date=a.due_date,
                               replaces_invoice_id=a.replaces_invoice_id))
        session.flush()
    for topic, payload in decision.emits:
        ctx.emit(topic, payload, cause=envelope, correlation_id=cmd.case_id)


def handle_payment_recorded(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """The city paid an invoice: from now on no correction replaces it (INV-6)."""
    cmd = envelope.payload
    if not isinstance(cmd, InvoicePaymentRecorded):
        raise PermanentFailure(f"{envelope.type} reached the payment handler; check the "
                               "subscription")
    row = ctx.session.exec(select(InvoiceRow).where(
        InvoiceRow.contractor_id == cmd.contractor_id,
        InvoiceRow.invoice_id == cmd.invoice_id)).first()
    if row is None or row.status == InvoiceStatus.REPLACED:
        state = "unknown" if row is None else f"replaced by {row.replaced_by}"
        raise PermanentFailure(f"payment recorded for invoice {cmd.invoice_id} of "
                               f"{cmd.contractor_id}, which is {state}: check the ERP's payment")
    row.status = InvoiceStatus.PAID
    row.paid_on = cmd.paid_on
    ctx.session.add(row)
    ctx.session.flush()


HANDLERS: dict[type[Payload], Handler] = {InvoiceSubmitted: handle_invoice_submitted,
                                          InvoicePaymentRecorded: handle_payment_recorded}
"""Every message type the invoice pipeline reads, and its handler."""


TOPICS: tuple[TopicSpec, ...] = (Topics.INVOICE_COMMANDS,)
"""What the invoice pipeline's consumer group reads."""

EMITS: tuple[tuple[TopicSpec, tuple[type[Payload], ...]], ...] = (
    (Topics.INVOICE_EVENTS, (InvoiceAccepted, InvoiceRejected, InvoiceNeedsStaffReview)),
    (Topics.ERP_COMMANDS, (ErpRegistrationRequested,)),
)
"""What its handler publishes, by topic (the hub declares it in the consumer's spec)."""
