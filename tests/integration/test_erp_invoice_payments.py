"""Payment requests from invoices through the real connector (zeep) and the reference ERP
(spyne over HTTP on loopback): the due date arrives (INV-1 item carried to the ERP), and a
correction replaces the unpaid payment request of the invoice it corrects; the ERP refuses
to replace one it has paid or does not hold (INV-6)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from connectors._shared import PermanentPeerError
from connectors.erp import rejection_for
from connectors.erp.mapping import to_soap
from connectors.erp.peer import ErpPeer
from tests.integration.test_erp_connector import connector_for, contract, payment

pytestmark = pytest.mark.soap


@pytest.fixture
def peer() -> Iterator[ErpPeer]:
    with ErpPeer() as running:
        yield running


async def test_due_date_reaches_the_erp(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    await erp.register(contract())
    request = payment(3_000_000).model_copy(update={"due_date": date(2027, 5, 31)})
    assert (await erp.register(request)).erp_reference.startswith("P-")
    held = peer.ledger.payment(request.business_key)
    assert held is not None
    assert (held["amount"], held["due_date"]) == (3_000_000, date(2027, 5, 31))
    again = await erp.register(request)  # a redelivery is the same registration
    assert again.duplicate
    await erp.aclose()


async def test_request_without_due_date_leaves_it_out() -> None:
    _, _, body = to_soap(payment(1_000))
    assert "due_date" not in body
    assert "replaces_business_key" not in body


async def test_a_correction_replaces_the_unpaid_request(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    await erp.register(contract(amount=10_000_000))
    original = payment(9_000_000, key="saitama-pref:R8-001:inv-1")
    await erp.register(original)
    # 9.5 M on top of 9 M would exceed the contract; replacing the 9 M it fits.
    correction = payment(9_500_000, key="saitama-pref:R8-001:inv-2").model_copy(
        update={"replaces_business_key": original.business_key})
    await erp.register(correction)
    held = peer.ledger.payment(original.business_key)
    assert held is not None
    assert held["replaced_by"] == correction.business_key
    await erp.aclose()


async def test_replacing_a_paid_or_unknown_request_is_refused_with_inv6(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    await erp.register(contract())
    original = payment(1_000_000, key="saitama-pref:R8-001:inv-1")
    await erp.register(original)
    peer.ledger.mark_paid(original.business_key, date(2027, 4, 30))
    for replaces, text in ((original.business_key, "支払済み"),
                           ("saitama-pref:R8-001:inv-9", "支払請求が財務会計にありません")):
        correction = payment(900_000, key=f"saitama-pref:R8-001:fix-{replaces[-1]}").model_copy(
            update={"replaces_business_key": replaces})
        with pytest.raises(PermanentPeerError) as info:
            await erp.register(correction)
        assert info.value.rule_ids == ("INV-6",)
        assert text in info.value.violations[0].message_ja
        rejection = rejection_for(correction, info.value)
        assert rejection is not None
    held = peer.ledger.payment(original.business_key)
    assert held is not None
    assert held["replaced_by"] is None
    await erp.aclose()
