"""ErpRegistrationRequested ↔ the ERP's SOAP operations, and SOAP faults → rule IDs.

Pure: no I/O. One operation per kind (contract, advance payment, payment).
Client faults are refusals of the data and become :class:`PermanentPeerError`
with the rule the registration serves (CON-2, SUR-6, INV-3; INV-1 for an
invalid invoice number); ``Server.Maintenance`` is a hold until the time the
ERP gives (WIN-2); other server faults are transient.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors._shared.errors import (
    ConnectorError,
    PeerInMaintenance,
    PermanentPeerError,
    TransientPeerError,
)
from schemas.erp import (
    ErpRegistered,
    ErpRegistrationKind,
    ErpRegistrationRejected,
    ErpRegistrationRequested,
)
from schemas.rejection import RuleViolation

__all__ = [
    "KIND_RULE",
    "NAMESPACE",
    "OPERATION",
    "from_fault",
    "from_receipt",
    "rejection_for",
    "to_soap",
]

NAME = "erp"
NAMESPACE = "urn:procurement-hub:erp:v1"
"""The target namespace of the ERP's WSDL (connectors/erp/erp.wsdl)."""

OPERATION: dict[ErpRegistrationKind, tuple[str, str]] = {
    ErpRegistrationKind.CONTRACT: ("RegisterContract", "registration"),
    ErpRegistrationKind.ADVANCE_PAYMENT: ("RegisterAdvancePaymentRequest", "request"),
    ErpRegistrationKind.PAYMENT: ("RegisterPaymentRequest", "request"),
}
"""Kind → (SOAP operation, its one argument)."""

KIND_RULE: dict[ErpRegistrationKind, str] = {
    ErpRegistrationKind.CONTRACT: "CON-2",
    ErpRegistrationKind.ADVANCE_PAYMENT: "SUR-6",
    ErpRegistrationKind.PAYMENT: "INV-3",
}

_FIELDS: dict[ErpRegistrationKind, tuple[str, ...]] = {
    ErpRegistrationKind.CONTRACT: ("contractor_name", "subject", "contract_date", "period_start",
                                   "period_end"),
    ErpRegistrationKind.ADVANCE_PAYMENT: ("request_date", "surety_number"),
    ErpRegistrationKind.PAYMENT: ("request_date", "invoice_number"),
}

# Fault code → (rule or None for the kind's rule, Japanese, English, next step ja, next step en)
_CLIENT_FAULTS: dict[str, tuple[str | None, str, str, str, str]] = {
    "UnknownContract": (
        None, "財務会計にこの契約が登録されていません。", "The ERP holds no such contract.",
        "契約の登録（契約締結後）を先に行ってから、もう一度依頼してください。",
        "Register the contract first (after conclusion), then request this again."),
    "AmountExceeded": (
        None, "請求金額が契約で認められる額を超えています。",
        "The amount exceeds what the contract allows.",
        "請求金額と既に登録された請求を確認してください。",
        "Check the amount against the payments already registered."),
    "InvalidInvoiceNumber": (
        "INV-1", "適格請求書発行事業者登録番号（T＋13桁）が正しくありません。",
        "The qualified invoice issuer number (T + 13 digits) is not valid.",
        "利用者情報に正しい登録番号を登録してから、請求をやり直してください。",
        "Register the correct issuer number in the user data, then invoice again."),
    "UnknownPaymentRequest": (
        "INV-6", "訂正元の支払請求が財務会計にありません。",
        "The ERP holds no payment request for the invoice corrected.",
        "訂正元の請求書の支払請求が登録済みか確認してから、もう一度依頼してください。",
        "Check that the corrected invoice's payment request is registered, then request again."),
    "PaymentAlreadyMade": (
        "INV-6", "訂正元の請求は財務会計で既に支払済みのため、置き換えられません。",
        "The ERP has already paid the invoice corrected, so it cannot be replaced.",
        "差額の精算は市の担当課と調整してください。",
        "Settle the difference with the city's office."),
    "BusinessKeyConflict": (
        None, "同じ業務キーで内容の異なる登録が既にあります。",
        "The business key is already registered with other content.",
        "業務キーを確認してください。同じ登録の再送なら内容を一致させてください。",
        "Check the business key; a resend of the same registration must carry the same content."),
}
_GENERIC_CLIENT = (
    None, "財務会計が登録内容を受け付けませんでした。", "The ERP refused the registration data.",
    "登録内容を確認・訂正して、もう一度依頼してください。",
    "Check and correct the registration data, then request it again.")

_UNTIL = re.compile(r"until (\S+)")


def to_soap(request: ErpRegistrationRequested) -> tuple[str, str, dict[str, Any]]:
    """``(operation, argument name, argument)`` for the zeep service call."""
    operation, argument = OPERATION[request.kind]
    body: dict[str, Any] = {
        "business_key": request.business_key,
        "contract_number": request.contract_number,
        "contractor_id": request.contractor_id,
        "amount_jpy": request.amount_jpy,
    }
    body.update({name: getattr(request, name) for name in _FIELDS[request.kind]})
    if request.kind is ErpRegistrationKind.PAYMENT:
        # Optional in the WSDL: left out when absent, so an older ERP sees the same request.
        body.update({name: value for name in ("due_date", "replaces_business_key")
                     if (value := getattr(request, name)) is not None})
    return operation, argument, body


def from_receipt(request: ErpRegistrationRequested, receipt: Any) -> ErpRegistered:
    """The canonical result; an answer that is not a receipt for this request is garbage."""
    key = getattr(receipt, "business_key", None)
    reference = getattr(receipt, "erp_reference", None)
    registered_at = getattr(receipt, "registered_at", None)
    if (key != request.business_key or not isinstance(reference, str) or not reference
            or not isinstance(registered_at, datetime) or registered_at.tzinfo is None):
        raise TransientPeerError(NAME, f"unexpected answer to {request.business_key}: "
                                 "not a receipt for this registration")
    return ErpRegistered(kind=request.kind, business_key=key, erp_reference=reference,
                         registered_at=registered_at, duplicate=bool(receipt.duplicate))


def _clean(text: str | None, limit: int = 200) -> str:
    # Fault text comes from outside: keep it short and printable before it reaches logs.
    printable = "".join(c for c in (text or "") if unicodedata.category(c)[0] != "C")
    return printable[:limit]


def from_fault(kind: ErpRegistrationKind, code: str | None, message: str | None,
               now: datetime | None = None) -> ConnectorError:
    """A SOAP fault as a classified error."""
    local = (code or "").rpartition(":")[2]
    side, _, name = local.partition(".")
    text = _clean(message)
    if side == "Server" and name == "Maintenance":
        match = _UNTIL.search(text)
        try:
            until = datetime.fromisoformat(match.group(1)) if match else None
        except ValueError:
            until = None
        if until is None or until.tzinfo is None:
            until = (now or datetime.now(UTC)) + timedelta(minutes=10)
        return PeerInMaintenance(NAME, until, "ERP")
    if side != "Client":
        return TransientPeerError(NAME, f"server fault {_clean(local, 60)}: {text}")
    rule, ja, en, next_ja, next_en = _CLIENT_FAULTS.get(name, _GENERIC_CLIENT)
    violation = RuleViolation(rule_id=rule or KIND_RULE[kind], message_ja=ja,
                              message_en=f"{en} ({text})" if text else en,
                              next_step_ja=next_ja, next_step_en=next_en)
    return PermanentPeerError(NAME, f"client fault {_clean(local, 60)}: {text}", (violation,))


def rejection_for(request: ErpRegistrationRequested,
                  error: PermanentPeerError) -> ErpRegistrationRejected | None:
    """The rejection event for a refusal that names rules (None: a configuration error)."""
    if not error.violations:
        return None
    return ErpRegistrationRejected(kind=request.kind, business_key=request.business_key,
                                   violations=error.violations)
