"""Fixture helpers for the real PC/SC stack: vpcd's reader and the virtual card."""

from __future__ import annotations

import time

import pytest
from smartcard import scard
from smartcard.System import readers

from card_agent.errors import NoCardError
from card_agent.pcsc import PcscBackend, PcscSession
from tests.card.vcard import VirtualCard

READER = "Virtual PCD 00 00"
PIN = "1234"


def require_vpcd() -> None:
    """Fail (not skip) when pcscd with vpcd is not running: deploy/test.sh starts it."""
    try:
        names = [str(r) for r in readers()]
    except Exception as exc:  # pyscard raises several unrelated types when pcscd is down
        pytest.fail(f"PC/SC not available ({type(exc).__name__}): run "
                    "`bash deploy/services.d/pcscd.sh start` (deploy/test.sh does this)")
    if READER not in names:
        pytest.fail(f"reader {READER!r} missing (found {names}): vsmartcard-vpcd not loaded; "
                    "run `bash deploy/setup.d/20-card.sh` and restart pcscd")


def open_card(timeout: float = 5.0) -> PcscSession:
    """Open the card in vpcd's reader, waiting for pcscd to notice the insertion."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return PcscBackend().open(READER)
        except NoCardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_reader(present: bool, timeout: float = 5.0) -> None:
    """Wait until pcscd reports the card in vpcd's reader present (or gone).

    A test that pulls the card waits for pcscd to notice before the next card goes in,
    as a person would; a card inserted before pcscd saw the removal is not powered up.
    """
    context = _context()
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rv, states = scard.SCardGetStatusChange(context, 200, [(READER, state)])
            if rv == scard.SCARD_S_SUCCESS:
                state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                if bool(state & scard.SCARD_STATE_PRESENT) == present:
                    return
        raise TimeoutError(f"{READER}: card {'not inserted' if present else 'not removed'}")
    finally:
        scard.SCardReleaseContext(context)


def _context() -> int:
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv != scard.SCARD_S_SUCCESS:
        raise RuntimeError("PC/SC context not available")
    return int(context)


def seat(card: VirtualCard, attempts: int = 4) -> VirtualCard:
    """Make sure pcscd powered the card up; re-seat it when pcscd missed the insertion.

    Right after a card was pulled mid-command, pcscd can miss a card inserted within
    about a second (it is still recovering the slot); taking the card out and in again
    is what a person would do.
    """
    for _ in range(attempts):
        try:
            wait_reader(present=True, timeout=1.5)
            return card
        except TimeoutError:
            card.remove()
            time.sleep(0.3)
            card.insert()
    wait_reader(present=True)
    return card
