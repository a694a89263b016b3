"""The card agent through the real PC/SC stack: pcscd + vpcd + the virtual card process.

PIN-1: a wrong PIN decrements the retries, the third locks the card, which is then
refused. A card pulled out mid-signature gives a clean error and no half-signed document.
PAdES B-T signatures through the card validate at the hub; one altered byte fails (CON-5).
Poppler's pdfsig (with an NSS database of the test roots) and openssl ts -verify judge the
same PDFs and must agree with the hub.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from card_agent.errors import CardLockedError, CardRemovedError, WrongPinError
from card_agent.pcsc import PcscBackend, watch
from card_agent.signing import sign_pdf
from card_agent.virtualcard import VirtualCard
from connectors.tsa import TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki
from hub.gateway.validation import SignatureRejectedError, validate_signed_pdf
from tests.card.fixtures import PIN, READER, open_card, require_vpcd, seat, wait_reader
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.support.outside_validators import (
    assert_outside_agrees,
    outside_verdict,
    pdfsig_verdicts,
    signature_timestamps,
)

pytestmark = [pytest.mark.pcsc, pytest.mark.tsa]


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def card_creds(pki: DevPki) -> CardCredentials:
    return pki.issue_card("山田 太郎", "埼玉県さいたま市浦和区高砂3-15-1", 7001)


@pytest.fixture
def vcard(card_creds: CardCredentials) -> Iterator[VirtualCard]:
    require_vpcd()
    card = seat(VirtualCard(card_creds.cert_der, card_creds.key_path, PIN).start())
    yield card
    card.stop()


@pytest.fixture(scope="module")
def tsa(pki: DevPki) -> Iterator[TsaConnector]:
    with ReferenceTsa(pki) as server:
        yield TsaConnector(TsaSettings(url=server.url), pki.trust_roots)


def test_reader_and_certificate(vcard: VirtualCard, card_creds: CardCredentials) -> None:
    assert READER in PcscBackend().readers()
    with open_card() as card:
        assert card.certificate() == card_creds.certificate
        status = card.pin_status()
        assert (status.verified, status.retries_left, status.locked) == (False, 3, False)


def test_wrong_pins_count_down_then_lock_the_card(vcard: VirtualCard) -> None:
    with open_card() as card:
        with pytest.raises(WrongPinError) as first:
            card.verify_pin("9999")
        assert first.value.retries_left == 2
        assert first.value.violation.rule_id == "PIN-1"
        assert "残り2回" in first.value.violation.message_ja
        assert "9999" not in str(first.value)
        with pytest.raises(WrongPinError) as second:
            card.verify_pin("8888")
        assert second.value.retries_left == 1
        with pytest.raises(CardLockedError) as locked:
            card.verify_pin("7777")
        assert "数日" in locked.value.violation.next_step_ja
        # Locked: even the right PIN is refused, and so is a signature.
        with pytest.raises(CardLockedError):
            card.verify_pin(PIN)
        assert card.pin_status().locked
        with pytest.raises(CardLockedError):
            card.sign_digest(b"\0" * 32, "sha256")
    assert vcard.retries == 0


def test_right_pin_resets_the_counter(vcard: VirtualCard) -> None:
    with open_card() as card:
        with pytest.raises(WrongPinError):
            card.verify_pin("0000")
        card.verify_pin(PIN)
        assert card.pin_status().verified
    assert vcard.retries == 3


def test_pades_bt_signature_validates_and_one_altered_byte_is_rejected(
    vcard: VirtualCard, card_creds: CardCredentials, tsa: TsaConnector, pki: DevPki
) -> None:
    with open_card() as card:
        card.verify_pin(PIN)
        signed = sign_pdf(make_pdf(20_000), card, tsa.timestamper(), chain=card_creds.chain)
    result = validate_signed_pdf(signed, pki.trust_roots, card_creds.issuer_dn, card_creds.serial)
    assert result.signer_serial == card_creds.serial
    assert result.timestamped_at is not None
    # poppler's pdfsig and openssl ts agree: valid, trusted, timestamp verified
    assert_outside_agrees(signed, pki.trust_roots, hub_accepts=True, signatures=1)
    assert len(signature_timestamps(signed)) == 1  # the B-T timestamp, checked by openssl
    assert not outside_verdict(signed, [pki.other_root.certificate])[0]  # the roots matter
    # Flip one byte inside the signed content (not in the signature container itself).
    altered = bytearray(signed)
    at = altered.index(b"Contract 2026-001")
    altered[at] ^= 0x01
    with pytest.raises(SignatureRejectedError) as rejected:
        validate_signed_pdf(bytes(altered), pki.trust_roots, card_creds.issuer_dn,
                            card_creds.serial)
    assert rejected.value.violation.rule_id == "CON-5"
    assert_outside_agrees(bytes(altered), pki.trust_roots, hub_accepts=False)
    (verdict,) = pdfsig_verdicts(bytes(altered), pki.trust_roots)
    assert verdict.signature == "Digest Mismatch."


def test_signature_by_another_card_is_refused(
    vcard: VirtualCard, card_creds: CardCredentials, tsa: TsaConnector, pki: DevPki
) -> None:
    with open_card() as card:
        card.verify_pin(PIN)
        signed = sign_pdf(make_pdf(), card, tsa.timestamper(), chain=card_creds.chain)
    with pytest.raises(SignatureRejectedError) as rejected:
        validate_signed_pdf(signed, pki.trust_roots, card_creds.issuer_dn, card_creds.serial + 1)
    assert rejected.value.violation.rule_id == "PIN-2"


def test_card_pulled_mid_signature_leaves_no_signed_document(
    vcard: VirtualCard, card_creds: CardCredentials, tsa: TsaConnector
) -> None:
    pdf = make_pdf()
    signed: list[bytes] = []
    with open_card() as card:
        card.verify_pin(PIN)
        vcard.remove_on_sign()
        with pytest.raises(CardRemovedError) as removed:
            signed.append(sign_pdf(pdf, card, tsa.timestamper(), chain=card_creds.chain))
    assert vcard.wait_pulled()
    wait_reader(present=False)
    assert signed == []
    assert "署名は行われていません" in removed.value.violation.message_ja


def test_watch_reports_insert_and_remove(vcard: VirtualCard) -> None:
    events: list[tuple[str, str]] = []
    seen_removed, seen_inserted = threading.Event(), threading.Event()

    def on_change(event: str, reader: str) -> None:
        events.append((event, reader))
        (seen_removed if event == "removed" else seen_inserted).set()

    stop = watch(on_change)
    try:
        assert seen_inserted.wait(5), "the monitor first reports the card already present"
        seen_inserted.clear()
        vcard.remove()
        assert seen_removed.wait(5), events
        vcard.insert()
        assert seen_inserted.wait(5)
    finally:
        stop()
    assert ("removed", READER) in events
    assert ("inserted", READER) in events
