"""ERP mapping: requests to SOAP arguments, receipts back, SOAP faults to rule IDs."""

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from connectors._shared import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors.erp.mapping import from_fault, from_receipt, rejection_for, to_soap
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested

K = ErpRegistrationKind


def payment(**changes: object) -> ErpRegistrationRequested:
    fields: dict[str, object] = {
        "kind": K.PAYMENT, "business_key": "city:R8-1:inv-1", "contract_number": "R8-1",
        "contractor_id": "1234567890123456", "contractor_name": "○○建設株式会社",
        "amount_jpy": 1000, "request_date": date(2027, 4, 1), "invoice_number": "T9234567890123",
    }
    return ErpRegistrationRequested(**{**fields, **changes})  # type: ignore[arg-type]


def test_to_soap_picks_operation_and_kind_fields() -> None:
    operation, argument, body = to_soap(payment())
    assert (operation, argument) == ("RegisterPaymentRequest", "request")
    assert body["invoice_number"] == "T9234567890123"
    assert "subject" not in body
    assert body["business_key"] == "city:R8-1:inv-1"


def test_each_kind_requires_its_fields() -> None:
    with pytest.raises(ValidationError, match="invoice_number"):
        payment(invoice_number=None)
    with pytest.raises(ValidationError, match="surety_number"):
        payment(kind=K.ADVANCE_PAYMENT, invoice_number=None)
    with pytest.raises(ValidationError, match="subject"):
        payment(kind=K.CONTRACT)
    with pytest.raises(ValidationError):
        payment(invoice_number="9234567890123")  # INV-1: T + 13 digits


def test_receipt_for_another_key_is_garbage() -> None:
    at = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    good = SimpleNamespace(business_key="city:R8-1:inv-1", erp_reference="P-1",
                           registered_at=at, duplicate=True)
    assert from_receipt(payment(), good).duplicate
    for bad in (SimpleNamespace(**{**vars(good), "business_key": "other"}),
                SimpleNamespace(**{**vars(good), "registered_at": at.replace(tzinfo=None)}),
                SimpleNamespace(**{**vars(good), "erp_reference": ""}), None):
        with pytest.raises(TransientPeerError, match="not a receipt"):
            from_receipt(payment(), bad)


@pytest.mark.parametrize(("kind", "code", "rule"), [
    (K.PAYMENT, "soap11env:Client.UnknownContract", "INV-3"),
    (K.ADVANCE_PAYMENT, "soap11env:Client.UnknownContract", "SUR-6"),
    (K.PAYMENT, "soap11env:Client.InvalidInvoiceNumber", "INV-1"),
    (K.CONTRACT, "soap11env:Client.BusinessKeyConflict", "CON-2"),
    (K.CONTRACT, "soap11env:Client.SchemaValidationError", "CON-2"),
    (K.PAYMENT, "Client", "INV-3"),
])
def test_client_faults_are_permanent_with_rules(kind: ErpRegistrationKind, code: str,
                                                rule: str) -> None:
    error = from_fault(kind, code, "detail\r\nInjected: header")
    assert isinstance(error, PermanentPeerError)
    assert error.rule_ids == (rule,)
    assert "\n" not in error.reason
    assert error.violations[0].message_ja
    assert error.violations[0].next_step_ja


def test_server_faults_are_transient_maintenance_is_a_hold() -> None:
    assert isinstance(from_fault(K.CONTRACT, "soap11env:Server", "boom"), TransientPeerError)
    until = datetime(2026, 11, 18, 23, 0, tzinfo=UTC)
    hold = from_fault(K.CONTRACT, "soap11env:Server.Maintenance",
                      f"ERP maintenance until {until.isoformat()}")
    assert isinstance(hold, PeerInMaintenance)
    assert hold.retry_at == until
    now = datetime(2026, 11, 18, 20, 0, tzinfo=UTC)
    vague = from_fault(K.CONTRACT, "Server.Maintenance", "back soon", now=now)
    assert isinstance(vague, PeerInMaintenance)
    assert vague.retry_at == now + timedelta(minutes=10)


def test_rejection_event_only_for_rule_refusals() -> None:
    refusal = from_fault(K.PAYMENT, "Client.InvalidInvoiceNumber", "bad")
    assert isinstance(refusal, PermanentPeerError)
    rejected = rejection_for(payment(), refusal)
    assert rejected is not None
    assert rejected.violations[0].rule_id == "INV-1"
    assert rejection_for(payment(), PermanentPeerError("erp", "HTTP 404")) is None
